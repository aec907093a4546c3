/**
 * One simulated GX site speaking the Venus OS MQTT dialect (dbus-flashmq): retained Serial for
 * discovery, keepalive-gated notifications with a heartbeat, full republish on request, reads,
 * writes, and the firmware RPC. Idle sites hold no timers: the alive window and the heartbeat are
 * entries in the fleet's shared scheduler, and only while someone keeps the site alive.
 */
import {
  fullPublishCompletedTopic,
  heartbeatTopic,
  notificationTopic,
  rpcOutTopic,
  serialTopic,
} from '../src/protocol/index.js';
import type { FleetContext } from './fleet-context.js';
import type { TimerHandle } from './scheduler.js';
import { SiteConnection } from './site-connection.js';
import type { PlannedDevice } from './site-plan.js';
import { handleRpcRequest, type RpcHost } from './site-rpc.js';
import { SimDevice } from './sim-device.js';
import type { UpdateRunner } from './update-runner.js';

/** dbus-flashmq hands out 3 full-republish tokens per second; further keepalives only renew alive. */
export const REPUBLISHES_PER_SEC = 3;

export class SimSite implements RpcHost {
  readonly portalId: string;
  readonly devices: readonly SimDevice[];
  private readonly conn: SiteConnection;
  private aliveUntil = 0;
  private aliveTimer: TimerHandle | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  private republishTokens = REPUBLISHES_PER_SEC;
  private tokensSince = 0;
  /** The GX is rebooting: deliberately offline until it comes back. */
  rebooting = false;
  /** The updates running on this site. */
  readonly updates = new Set<UpdateRunner>();
  /** The GX never came back from a reboot (`neverReturns`). */
  dead = false;

  constructor(
    readonly ctx: FleetContext,
    portalId: string,
    planned: readonly PlannedDevice[],
  ) {
    this.portalId = portalId;
    this.devices = planned.map((p) => new SimDevice(p));
    this.conn = new SiteConnection(ctx, portalId, {
      onReady: () => ctx.siteChanged(),
      onLost: () => ctx.siteChanged(),
      onMessage: (topic, payload) => this.onMessage(topic, payload),
    });
  }

  /** Connected, subscribed and announced. */
  get connected(): boolean {
    return this.conn.ready;
  }

  /** Someone sent a keepalive less than `aliveSec` (scaled) ago: changes and heartbeats flow. */
  get alive(): boolean {
    return this.aliveUntil > this.ctx.scheduler.now();
  }

  /** The site process runs (not rebooting, not dead); its link may still be down. */
  get up(): boolean {
    return !this.rebooting && !this.dead;
  }

  get platform(): SimDevice {
    return this.devices[0];
  }

  device(service: string, instance: number): SimDevice | undefined {
    return this.devices.find((d) => d.service === service && d.instance === instance);
  }

  start(): void {
    this.conn.start();
  }

  /** Goes offline (retained null Serial, clean disconnect) and drops its timers. */
  async stop(): Promise<void> {
    this.endAlive();
    await this.conn.goOffline('stopped');
  }

  /** Test hook: the network drops (no DISCONNECT, so the broker publishes the will); the site reconnects. */
  dropLink(): void {
    this.conn.dropLink();
  }

  // ---- publishing ----

  sendRpc(rpcId: string, body: unknown): void {
    this.conn.publish(rpcOutTopic(this.portalId, rpcId), JSON.stringify(body));
  }

  notify(device: SimDevice, ...paths: string[]): void {
    if (!this.alive || !device.online) return;
    for (const [path, value] of device.leaves())
      if (paths.includes(path)) this.publishLeaf(device, path, value);
  }

  serviceLeft(device: SimDevice): void {
    if (!this.alive) return;
    this.publishLeaf(device, 'Connected', 0);
    // dbus-flashmq: when a service leaves, each of its topics gets an empty payload.
    for (const [path] of device.leaves())
      this.conn.publish(notificationTopic(this.portalId, device.service, device.instance, path), '');
  }

  serviceReturned(device: SimDevice): void {
    if (!this.alive) return;
    for (const [path, value] of device.leaves()) this.publishLeaf(device, path, value);
  }

  async rebootPlatform(downMs: number, comesBack: boolean, whileDown: () => void): Promise<boolean> {
    for (const update of this.updates) update.gxRebooting();
    // A reboot restarts dbus-flashmq: whoever kept the site alive has to send a keepalive again.
    this.endAlive();
    this.rebooting = true;
    this.platform.online = false;
    this.ctx.siteChanged();
    await this.conn.goOffline('down');
    if (!comesBack) {
      this.rebooting = false;
      this.dead = true;
      this.ctx.siteChanged();
      return false;
    }
    await this.ctx.scheduler.sleep(downMs);
    whileDown();
    this.platform.online = true;
    this.rebooting = false;
    this.conn.start();
    return true;
  }

  private publishLeaf(device: SimDevice, path: string, value: unknown): void {
    this.conn.publish(
      notificationTopic(this.portalId, device.service, device.instance, path),
      JSON.stringify({ value }),
    );
  }

  private publishSerial(): void {
    this.conn.publish(serialTopic(this.portalId), JSON.stringify({ value: this.portalId }), true);
  }

  // ---- incoming ----

  private onMessage(topic: string, payload: Buffer): void {
    const parts = topic.split('/');
    if (parts[1] !== this.portalId) return;
    const kind = parts[0];
    const rest = parts.slice(2);
    if (kind === 'P' && rest.length === 2 && rest[0] === 'in') {
      handleRpcRequest(this, rest[1], payload);
    } else if (kind === 'R') {
      const legacy = rest.length === 3 && rest[0] === 'system' && rest[1] === '0' && rest[2] === 'Serial';
      if ((rest.length === 1 && rest[0] === 'keepalive') || legacy) this.onKeepalive(payload);
      else this.onRead(rest);
    } else if (kind === 'W') {
      this.onWrite(rest, payload);
    }
  }

  private onKeepalive(payload: Buffer): void {
    const text = payload.toString('utf8');
    // dbus-flashmq does not parse for this option either: it searches the payload for the word.
    const suppress = text.includes('suppress-republish');
    if (!suppress && this.takeRepublishToken()) this.fullRepublish(parseEcho(text));
    const wasAlive = this.alive;
    this.aliveUntil = this.ctx.scheduler.now() + this.ctx.time.ms(this.ctx.durations.aliveSec);
    if (!this.aliveTimer) this.armAliveTimer();
    if (!wasAlive) {
      // The window may have lapsed a moment before its timer ran: never run two heartbeat chains.
      this.ctx.scheduler.cancel(this.heartbeatTimer);
      this.heartbeat();
    }
  }

  /** Reads are answered whether or not the site is alive (dbus-flashmq publishes the read item unconditionally). */
  private onRead(path: string[]): void {
    const wanted = path.join('/');
    const within = (key: string) => key === wanted || key.startsWith(`${wanted}/`);
    if (within('system/0/Serial')) this.publishSerial();
    for (const device of this.devices) {
      if (!device.online) continue;
      const base = `${device.service}/${device.instance}`;
      if (!within(base) && !wanted.startsWith(`${base}/`)) continue;
      for (const [leaf, value] of device.leaves())
        if (within(`${base}/${leaf}`)) this.publishLeaf(device, leaf, value);
    }
  }

  /** Only `/CustomName` is writable here; the new value is published back as confirmation. */
  private onWrite(path: string[], payload: Buffer): void {
    const [service, instance, ...leaf] = path;
    const device = this.device(service, Number(instance));
    let value: unknown;
    try {
      value = (JSON.parse(payload.toString('utf8')) as { value?: unknown }).value;
    } catch {
      value = undefined;
    }
    if (
      !device ||
      !device.online ||
      leaf.join('/') !== 'CustomName' ||
      typeof value !== 'string' ||
      value.length > 64
    ) {
      this.ctx.logger.debug({ portalId: this.portalId, path: path.join('/') }, 'write ignored');
      return;
    }
    device.customName = value;
    this.publishLeaf(device, 'CustomName', value);
  }

  private fullRepublish(echo: string | undefined): void {
    this.publishSerial();
    for (const device of this.devices) {
      if (!device.online) continue;
      for (const [path, value] of device.leaves()) this.publishLeaf(device, path, value);
    }
    const done: Record<string, unknown> = { value: unixTime() };
    if (echo !== undefined) done['full-publish-completed-echo'] = echo;
    this.conn.publish(fullPublishCompletedTopic(this.portalId), JSON.stringify(done));
  }

  private takeRepublishToken(): boolean {
    const now = this.ctx.scheduler.now();
    // Tokens are real time, not scaled: the limit protects the broker, it is not simulated behaviour.
    if (now - this.tokensSince >= 1000) {
      this.tokensSince = now;
      this.republishTokens = REPUBLISHES_PER_SEC;
    }
    if (this.republishTokens <= 0) return false;
    this.republishTokens--;
    return true;
  }

  /** One timer for the alive window; renewals only move `aliveUntil`, the timer re-arms lazily. */
  private armAliveTimer(): void {
    this.aliveTimer = this.ctx.scheduler.after(this.aliveUntil - this.ctx.scheduler.now(), () => {
      this.aliveTimer = null;
      if (this.alive) this.armAliveTimer();
      else this.endAlive();
    });
  }

  private heartbeat(): void {
    this.heartbeatTimer = null;
    if (!this.alive) return;
    this.conn.publish(heartbeatTopic(this.portalId), JSON.stringify({ value: unixTime() }));
    this.heartbeatTimer = this.ctx.scheduler.after(
      this.ctx.time.periodMs(this.ctx.durations.heartbeatSec),
      () => this.heartbeat(),
    );
  }

  private endAlive(): void {
    this.aliveUntil = 0;
    this.ctx.scheduler.cancel(this.aliveTimer);
    this.ctx.scheduler.cancel(this.heartbeatTimer);
    this.aliveTimer = null;
    this.heartbeatTimer = null;
  }
}

/** The `full-publish-completed-echo` of a keepalive payload, if any. */
export function parseEcho(text: string): string | undefined {
  if (!text) return undefined;
  try {
    const options = (JSON.parse(text) as { 'keepalive-options'?: unknown })['keepalive-options'];
    if (!Array.isArray(options)) return undefined;
    let echo: string | undefined;
    for (const option of options) {
      const value = (option as Record<string, unknown> | null)?.['full-publish-completed-echo'];
      if (typeof value === 'string') echo = value;
    }
    return echo;
  } catch {
    return undefined;
  }
}

function unixTime(): number {
  return Math.floor(Date.now() / 1000);
}
