/**
 * The benchmark's simulator process: one fleet, driven by the parent over IPC (see bench-sim.ts).
 *
 * Each site is a GX plus one solar charger, so a job over every solar charger updates one device per
 * site. The time scale compresses the update itself (download, verify, install, reboot); the keepalive
 * window and the heartbeat stay real-time (60 s, 3 s), because the service keeps sites alive on a
 * real-time clock: compressing them too would silence every site between two keepalives.
 *
 * Instrumentation wraps two simulator methods in this process only: the send of an RPC message
 * (progress events are timestamped while recording) and the site connection's publish and receive
 * (message counts). Nothing of it changes what a site does.
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import '../../src/quiet-debug.js';
import { pino } from 'pino';
import { realTimeProtocolTimers, startFleet, type Fleet } from '../../devices-sim/index.js';
import { SimSite } from '../../devices-sim/sim-site.js';
import { SiteConnection } from '../../devices-sim/site-connection.js';
import { monoUs, type FromChild, type ProgressSample, type SimStartOptions, type ToChild } from './bench-sim.js';

let fleet: Fleet | null = null;
let recording = false;
let samples: ProgressSample[] = [];
let published = 0;
let received = 0;

function send(message: FromChild): void {
  process.send?.(message);
}

function instrument(): void {
  const sendRpc = SimSite.prototype.sendRpc;
  SimSite.prototype.sendRpc = function (this: SimSite, rpcId: string, body: unknown): void {
    const b = body as { event?: unknown; executionId?: unknown; phase?: unknown; progress?: unknown };
    sendRpc.call(this, rpcId, body);
    if (recording && b.event === 'progress' && this.connected) {
      samples.push([String(b.executionId), String(b.phase), Number(b.progress), monoUs()]);
    }
  };
  const publish = SiteConnection.prototype.publish;
  SiteConnection.prototype.publish = function (this: SiteConnection, topic: string, payload: string | Buffer, retain?: boolean): void {
    // Counted when it really goes out: the same condition as SiteConnection.publish, read from its private client.
    const client = (this as unknown as { client: { connected: boolean } | null }).client;
    if ((this.state === 'ready' || this.state === 'connecting') && client?.connected) published++;
    publish.call(this, topic, payload, retain);
  };
  // SimSite.onMessage is private to the simulator; counting its calls is all this does.
  const proto = SimSite.prototype as unknown as { onMessage(topic: string, payload: Buffer): void };
  const onMessage = proto.onMessage;
  proto.onMessage = function (this: SimSite, topic: string, payload: Buffer): void {
    received++;
    onMessage.call(this, topic, payload);
  };
}

async function start(o: SimStartOptions): Promise<void> {
  const started = performance.now();
  fleet = await startFleet({
    url: o.url,
    sites: o.sites,
    seed: 1,
    portalIdSalt: o.salt,
    timeScale: o.timeScale,
    mix: { vebus: 0, solarcharger: 1, battery: 0 },
    durations: realTimeProtocolTimers(o.timeScale),
    timingSpread: o.timingSpread,
    connectRatePerSec: o.connectRatePerSec,
    connectTimeoutMs: 30 * 60_000,
    credentials: (portalId) => o.secrets[portalId] ?? 'unknown',
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
  const connectMs = performance.now() - started;
  const devices = fleet.devices().map((d) => ({ deviceId: d.deviceId, service: d.service, version: d.version }));
  send({ type: 'started', connectMs, devices });
}

function stats(): FromChild {
  const cpu = process.cpuUsage();
  const s = fleet?.stats();
  return {
    type: 'stats',
    stats: {
      cpuUs: cpu.user + cpu.system,
      rss: process.memoryUsage().rss,
      connected: s?.connected ?? 0,
      updating: s?.updating ?? 0,
      succeeded: s?.succeeded ?? 0,
      failed: s?.failed ?? 0,
      published,
      received,
    },
  };
}

async function handle(m: ToChild): Promise<void> {
  switch (m.type) {
    case 'start':
      await start(m.options);
      return;
    case 'record':
      recording = m.on;
      if (m.on) samples = [];
      return;
    case 'samples':
      send({ type: 'samples', samples });
      samples = [];
      return;
    case 'stats':
      send(stats());
      return;
    case 'stop':
      await fleet?.stop();
      send({ type: 'stopped' });
      process.exit(0);
  }
}

instrument();
process.on('message', (m: ToChild) => {
  handle(m).catch((err: unknown) => send({ type: 'error', message: err instanceof Error ? err.message : String(err) }));
});
// The parent went away: do not linger with thousands of sockets open.
process.on('disconnect', () => {
  void (fleet?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
});
