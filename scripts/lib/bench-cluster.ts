/**
 * One benchmark run's processes: a private redis-server (no persistence), the service in its own
 * process (`src/main.ts`: api,broker,worker with the embedded broker, or api,worker pointed at the
 * machine's Mosquitto), and the simulated fleet in another, every site registered and inventoried.
 * Each run starts all of it fresh and tears it down, so runs are independent.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { portalIdsFor } from '../../devices-sim/index.js';
import { connectMqtt, waitConnected, type MqttClient } from '../../src/mqtt/connect.js';
import { fleetDeviceTopic, jobDeviceTopic, jobStatusTopic, parseFleetflashTopic, serialTopic } from '../../src/protocol/index.js';
import { createKeys, type Keys } from '../../src/store/keys.js';
import { SiteStore } from '../../src/store/site-store.js';
import type { BenchArgs, BrokerMode } from './bench-args.js';
import { collectGarbage } from './bench-inspector.js';
import { mosquittoPid, procSample, procSamples } from './bench-proc.js';
import { SimProcess } from './bench-sim.js';
import { freePort, healthzAnswers, ManagedProcess, onSignalCleanUp, ROOT, SERVICE_NODE_FLAGS, stoppingOnSignal, volatileRedisServer } from './processes.js';

/** The Mosquitto of the `mosquitto` runs, anonymous clients allowed (the machine's: /etc/mosquitto/mosquitto.conf). */
function mosquittoUrl(port: number): string {
  return `mqtt://127.0.0.1:${port}`;
}

export interface RssSample {
  service: number;
  raw: number;
  broker: number;
}

export interface Cluster {
  mode: BrokerMode;
  prefix: string;
  keys: Keys;
  /** The bench's own connection to the private Redis. */
  redis: Redis;
  redisPid: number;
  /** The service's processes (one, or the front and a worker): their CPU and memory are the service's. */
  servicePids: number[];
  /** Mosquitto's pid in mosquitto mode (its CPU and memory count as the broker's), else null. */
  brokerPid: number | null;
  httpUrl: string;
  /** The broker the sites and the service use. */
  mqttUrl: string;
  servicePassword: string;
  operatorToken: string;
  sim: SimProcess;
  /** Solar charger device ids, one per site: what the jobs update. */
  targets: string[];
  devices: number;
  /** Milliseconds for every site to connect (and be acknowledged), from the simulator's start. */
  connectMs: number;
  /**
   * RSS (bytes) of the service after a full garbage collection, and as found (`raw`), and Mosquitto's
   * heap in use (its RSS where it publishes none; 0 when embedded), before the fleet connected and
   * once it was inventoried.
   */
  rssBeforeFleet: RssSample;
  rssWithFleet: RssSample;
  /** The service's RSS right after a full garbage collection (through its inspector). */
  liveRss(): Promise<number>;
  /** Each service process's name (broker, front, worker, service) and inspector port, in `servicePids`' order. */
  inspectors: { name: string; port: number }[];
  workDir: string;
  /** Why the run cannot go on (a service process died), or null. */
  failure(): string | null;
  /** The end of the service's log (stdout and stderr). */
  serviceLogTail(chars?: number): Promise<string>;
  close(): Promise<void>;
}

/** `src/main.ts` with `env`, the service's Node flags and extra ones; `ready` says when it serves. */
function serviceProcess(name: string, env: Record<string, string>, logFile: string, nodeArgs: string[], ready: () => Promise<boolean>): ManagedProcess {
  return new ManagedProcess(name, process.execPath, [...SERVICE_NODE_FLAGS, ...nodeArgs, '--import', 'tsx', path.join(ROOT, 'src/main.ts')], { ...process.env, ...env }, logFile, ready);
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts Redis, the service and the fleet; resolves once every device is in the inventory. */
export async function startCluster(mode: BrokerMode, args: BenchArgs, log: (line: string) => void): Promise<Cluster> {
  const prefix = `bench${randomBytes(3).toString('hex')}`;
  const workDir = await mkdtemp(path.join(os.tmpdir(), `ff-${prefix}-`));
  const closers: (() => Promise<void>)[] = [];
  // Once, whoever asks first: the run's end, a failed start, or a signal stopping the bench (Ctrl-C,
  // `kill`, `timeout`), which would otherwise stop the processes without clearing what a Mosquitto
  // run left retained there (8,752 messages after a 10,000-site run stopped by `timeout`).
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      for (const c of closers.reverse()) await c().catch((err: unknown) => log(`  clean-up step failed: ${String(err)}`));
      forgetOnSignal();
    })());
  const discardWorkDir = async () => {
    if (process.env.BENCH_DEBUG) log(`  BENCH_DEBUG: logs kept in ${workDir}`);
    else await rm(workDir, { recursive: true, force: true });
  };
  const forgetOnSignal = onSignalCleanUp(() => close().then(discardWorkDir));
  try {
    const redisPort = await freePort();
    const redisProc = volatileRedisServer(redisPort, workDir);
    await redisProc.start();
    closers.push(() => redisProc.stop());
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    // ioredis prints an error nobody listens for with a stack; the redis-server going away while a
    // signal stops the run is expected.
    redis.on('error', (err: Error) => {
      if (!stoppingOnSignal()) log(`  bench's Redis connection: ${err.message}`);
    });
    closers.push(async () => void redis.disconnect());
    // What a Mosquitto run leaves retained there is cleared once the service has stopped: its fleet
    // monitor publishes the sites' devices as offline after the fleet is gone, and a clean-up before
    // that left them there (1,205 after a 2,000-site run). It needs no Redis: Ctrl-C stops the run's
    // redis-server too.
    let clearMosquitto: (() => Promise<void>) | null = null;
    closers.push(async () => await clearMosquitto?.());

    const brokerUrl = mosquittoUrl(args.mosquittoPort);
    const brokerPid = mode === 'mosquitto' ? await mosquittoPid(args.mosquittoPort) : null;
    if (mode === 'mosquitto' && brokerPid === null) throw new Error(`--broker mosquitto: no Mosquitto found listening on 127.0.0.1:${args.mosquittoPort} (--mosquitto-port)`);
    const [httpPort, mqttPort, brokerHttpPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const servicePassword = randomBytes(16).toString('hex');
    const operatorToken = `op-${randomBytes(12).toString('hex')}`;
    const common: Record<string, string> = {
      PORT: String(httpPort),
      MQTT_PORT: String(mqttPort),
      HOST: '127.0.0.1',
      PUBLIC_URL: `http://127.0.0.1:${httpPort}`,
      QUEUE_PREFIX: prefix,
      REDIS_URL: redisUrl,
      SIGNING_SECRET: randomBytes(32).toString('hex'),
      MQTT_SERVICE_PASSWORD: servicePassword,
      API_TOKENS: `operator:${operatorToken}`,
      FIRMWARE_DIR: path.join(workDir, 'firmware'),
      LOG_LEVEL: args.logLevel,
      ...(mode === 'mosquitto' ? { MQTT_URL: brokerUrl } : {}),
      ...(args.workerConcurrency !== null ? { WORKER_CONCURRENCY: String(args.workerConcurrency) } : {}),
      ...(args.startWindow !== null ? { WORKER_START_WINDOW: String(args.startWindow) } : {}),
    };
    const mqttUrl = mode === 'embedded' ? `mqtt://127.0.0.1:${mqttPort}` : brokerUrl;
    // single: every role in one process. split: the front (api, and the broker when embedded) and a
    // worker process pointed at the broker, as docker-compose.yml deploys it. apart: the embedded
    // broker in a process of its own, the api's and the worker's pointed at it.
    const apart = mode === 'embedded' && args.topology === 'apart';
    const front = mode === 'embedded' && !apart ? 'api,broker' : 'api';
    const roles = args.topology === 'single' ? [`${front},worker`] : [...(apart ? ['broker'] : []), front, 'worker'];
    const services: { name: string; proc: ManagedProcess; inspectPort: number; log: string }[] = [];
    let stopping = false;
    let failure: string | null = null;
    closers.push(async () => {
      stopping = true;
      for (const s of [...services].reverse()) await s.proc.stop();
    });
    for (const [i, role] of roles.entries()) {
      const name = roles.length === 1 ? 'service' : role.includes('api') ? 'front' : role === 'broker' ? 'broker' : 'worker';
      // The inspector, on loopback only, lets the bench run a full GC before it reads memory figures.
      // V8's memory reducer is off: its collection, on a timer once a process goes quiet, gave 10-13 MB
      // of start-up memory back to the system at no fixed moment, and when that fell between the
      // readings before and after the fleet (in the worker, which holds no site, in every run), the
      // memory per site came out 1-2 KB lower on both sides. It acts only on a process gone quiet.
      const inspectPort = await freePort();
      const nodeArgs: string[] = [`--inspect=127.0.0.1:${inspectPort}`, '--no-memory-reducer', ...args.serviceNodeArgs];
      if (args.profileDir) {
        await mkdir(args.profileDir, { recursive: true });
        // Not allowed in NODE_OPTIONS: passed on the command line; written when the service exits.
        nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${path.resolve(args.profileDir)}`);
      }
      const env = { ...common, ROLE: role };
      let ready = healthzAnswers(httpPort);
      if (role === 'broker') {
        // Browsers reach it over WebSocket on its own HTTP port, where it answers the probes.
        Object.assign(env, { PORT: String(brokerHttpPort) });
        ready = healthzAnswers(brokerHttpPort);
      } else if (apart) {
        Object.assign(env, { MQTT_URL: mqttUrl, MQTT_BROWSER_URL: `ws://127.0.0.1:${brokerHttpPort}/mqtt` });
      }
      if (!role.includes('api') && role !== 'broker') {
        // A worker has no API: its metrics listener, opened last at start-up, says it is up.
        const metricsPort = await freePort();
        Object.assign(env, { MQTT_URL: mqttUrl, METRICS_PORT: String(metricsPort) });
        ready = () => fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.ok, () => false);
      }
      const logFile = path.join(workDir, `${name}.log`);
      const proc = serviceProcess(name, env, logFile, nodeArgs, ready);
      services.push({ name, proc, inspectPort, log: logFile });
      await proc.start(60_000);
      proc.child?.once('exit', (code, signal) => {
        if (stopping || stoppingOnSignal()) return;
        failure = `the ${name} process exited unexpectedly (code ${code ?? '-'}, signal ${signal ?? '-'}); its log: ${logFile}`;
        log(`  ${failure}`);
      });
      if (i === 0 && roles.length > 1) log(`  processes: ${roles.map((r) => `[${r}]`).join(' + ')}`);
    }
    const servicePids = services.map((s) => s.proc.pid!);

    const liveRss = async () => {
      await Promise.all(services.map((s) => collectGarbage(s.inspectPort)));
      return (await procSamples(servicePids)).rss;
    };
    const rssNow = async (): Promise<RssSample> => {
      const raw = (await procSamples(servicePids)).rss;
      const service = await liveRss();
      // Mosquitto's live heap, its counterpart of the service's RSS after a full GC: its RSS keeps
      // the memory an earlier run's fleet freed, so the next fleet's sites cost it no RSS at all.
      const broker = brokerPid ? ((await mosquittoHeapBytes(brokerUrl)) ?? (await procSample(brokerPid)).rss) : 0;
      return { raw, service, broker };
    };
    // Settled after start-up (JIT, first Redis and MQTT traffic) before the baseline is taken.
    await new Promise((r) => setTimeout(r, 2000));
    const rssBeforeFleet = await rssNow();
    const salt = prefix;
    const portalIds = portalIdsFor(args.sites, 1, salt);
    const keys = createKeys(prefix);
    const registered = await new SiteStore(redis, keys).register(portalIds.map((portalId) => ({ portalId })), 'bench');
    const secrets = Object.fromEntries(registered.map((s) => [s.portalId, s.secret]));

    const sim = SimProcess.spawn(args.profileDir);
    closers.push(() => sim.stop());
    if (mode === 'mosquitto') clearMosquitto = () => clearRetained(brokerUrl, portalIds, targetsOf(portalIds));
    const started = await sim.start(
      { url: mqttUrl, sites: args.sites, salt, timeScale: args.timeScale, timingSpread: args.timingSpread, connectRatePerSec: args.connectRate, secrets },
      30 * 60_000,
    );
    const targets = started.devices.filter((d) => d.service === 'solarcharger').map((d) => d.deviceId);
    log(`  ${args.sites} sites connected in ${(started.connectMs / 1000).toFixed(1)} s; waiting for the inventory of ${started.devices.length} devices`);
    await until(
      async () => (await redis.hlen(keys.devices())) >= started.devices.length,
      60_000 + args.sites * 20,
      `the inventory of ${started.devices.length} devices`,
    ).catch(async (err: Error) => {
      const known = new Set(await redis.hkeys(keys.devices()));
      const missing = started.devices.filter((d) => !known.has(d.deviceId)).map((d) => d.deviceId);
      throw new Error(`${err.message}: ${missing.length} missing, e.g. ${missing.slice(0, 5).join(', ')}`);
    });
    await new Promise((r) => setTimeout(r, 2000));
    const rssWithFleet = await rssNow();
    return {
      failure: () => failure,
      mode,
      prefix,
      keys,
      redis,
      redisPid: redisProc.pid!,
      servicePids,
      brokerPid,
      httpUrl: `http://127.0.0.1:${httpPort}`,
      mqttUrl,
      servicePassword,
      operatorToken,
      sim,
      targets,
      devices: started.devices.length,
      connectMs: started.connectMs,
      rssBeforeFleet,
      rssWithFleet,
      liveRss,
      inspectors: services.map((sv) => ({ name: sv.name, port: sv.inspectPort })),
      workDir,
      serviceLogTail: async (chars = 4000) => {
        const tails = await Promise.all(services.map((sv) => readFile(sv.log, 'utf8').then((t) => `${path.basename(sv.log)}:\n${t.slice(-chars)}`, () => '')));
        return tails.join('\n');
      },
      close: () => close().then(discardWorkDir),
    };
  } catch (err) {
    await close();
    const tail = (
      await Promise.all(['service', 'broker', 'front', 'worker'].map((n) => readFile(path.join(workDir, `${n}.log`), 'utf8').then((t) => `${n}.log:\n${t.slice(-3000)}`, () => '')))
    )
      .filter(Boolean)
      .join('\n');
    await discardWorkDir();
    if (tail) log(`  service log (end):\n${tail}`);
    throw err;
  }
}

/**
 * Mosquitto's heap in use (`$SYS/broker/heap/current`, bytes), or null when it publishes none (a
 * build without memory tracking). The retained value is the last one published, current unless the
 * heap changed since; then a fresh one comes within the `$SYS` interval (10 s by default).
 */
async function mosquittoHeapBytes(url: string, waitMs = 11_000): Promise<number | null> {
  const client = connectMqtt(url, { clientId: `ffbench-heap-${randomBytes(4).toString('hex')}`, reconnectPeriod: 0 });
  try {
    await waitConnected(client);
    let bytes: number | null = null;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      client.on('message', (_topic, payload, packet) => {
        const n = Number(payload.toString());
        if (!Number.isFinite(n)) return;
        bytes = n;
        if (!packet.retain) {
          clearTimeout(timer);
          resolve();
        }
      });
      client.subscribe('$SYS/broker/heap/current');
    });
    return bytes;
  } finally {
    await client.endAsync();
  }
}

function targetsOf(portalIds: readonly string[]): string[] {
  return portalIds.map((id) => `${id}.solarcharger.256`);
}

/**
 * Mosquitto keeps retained messages (and persists them): remove every one this run left there, the
 * sites' Serials, the fleet records and the jobs' records, with empty retained publishes. The jobs'
 * records are found in the broker, by this run's devices in their topics: the bench does not learn
 * the id of a job whose `POST /api/jobs` was on its way when a signal stopped it (the launch phase
 * has 16 at a time), and those records stayed behind.
 */
async function clearRetained(url: string, portalIds: readonly string[], targets: readonly string[]): Promise<void> {
  const client = connectMqtt(url, { clientId: `ffbench-clean-${randomBytes(4).toString('hex')}`, reconnectPeriod: 0 });
  await waitConnected(client);
  try {
    const topics: string[] = [];
    for (const id of portalIds) topics.push(serialTopic(id), fleetDeviceTopic(`${id}.platform.0`));
    for (const d of targets) topics.push(fleetDeviceTopic(d));
    topics.push(...(await retainedJobTopics(client, targets)));
    for (let i = 0; i < topics.length; i += 1000) {
      await Promise.all(topics.slice(i, i + 1000).map((t) => client.publishAsync(t, '', { qos: 1, retain: true })));
    }
  } finally {
    await client.endAsync();
  }
}

/**
 * The retained job topics that name one of `devices` (`fleetflash/jobs/<id>/devices/<device>`), and
 * those jobs' status topics. Asked for a few devices at a time: Mosquitto drops what a client's queue
 * holds beyond `max_queued_messages` (1,000 by default), QoS 0 included, and one subscription to every
 * job topic after a 10,000-site run got 8,168 of ~20,000. Every retained message of a subscription
 * arrives before a message published after it, so a marker of this client's own ends each wait.
 */
async function retainedJobTopics(client: MqttClient, devices: readonly string[]): Promise<string[]> {
  const marker = `ffbench/end-${randomBytes(4).toString('hex')}`;
  const found = new Set<string>();
  const jobs = new Set<string>();
  let markerArrived = () => {};
  client.on('message', (topic, _payload, packet) => {
    if (topic === marker) return markerArrived();
    const t = parseFleetflashTopic(topic);
    if (packet.retain && t?.kind === 'job-device') {
      found.add(topic);
      jobs.add(t.jobId);
    }
  });
  await client.subscribeAsync(marker, { qos: 0 });
  for (let i = 0; i < devices.length; i += SWEEP_DEVICES) {
    const filters = devices.slice(i, i + SWEEP_DEVICES).map((d) => jobDeviceTopic('+', d));
    const arrived = new Promise<void>((resolve) => (markerArrived = resolve));
    await client.subscribeAsync(filters, { qos: 0 });
    await client.publishAsync(marker, '', { qos: 0 });
    await arrived;
    await client.unsubscribeAsync(filters);
  }
  return [...found, ...[...jobs].map(jobStatusTopic)];
}

/** Devices per sweep subscription: a bench run gives each device records in at most ~7 jobs, so well under 1,000 messages. */
const SWEEP_DEVICES = 100;
