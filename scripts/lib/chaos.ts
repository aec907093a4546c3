/**
 * The chaos run behind `npm run chaos` and the chaos test: a fleet update over real processes (a
 * private Redis with AOF, one api+broker process, several worker processes) while worker processes
 * are killed with SIGKILL at random moments and the broker and Redis are restarted. The simulator's
 * ground truth then says whether anything was lost, repeated or misreported.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startFleet, type FaultKind, type Fleet } from '../../devices-sim/index.js';
import { EXECUTION_QUEUE } from '../../src/queue/execution-queue.js';
import { createKeys } from '../../src/store/keys.js';
import { DEMO_IMAGES, imageBytes } from '../../src/demo/seed-firmware.js';
import {
  isTerminalExecutionState,
  parseDeviceId,
  type DeviceRecord,
  type ExecutionRecord,
  type FirmwareRecord,
  type JobEvent,
  type JobRecord,
} from '../../src/protocol/index.js';
import { fleetflashProcess, freePort, redisServer, type ManagedProcess } from './processes.js';

export interface ChaosOptions {
  sites: number;
  workers: number;
  workerKills: number;
  restartBroker: boolean;
  restartRedis: boolean;
  /**
   * Launch one more job (a fifth of the largest product job's devices, released two at a time by
   * `maxConcurrent: 2`), abort it and SIGKILL the api,broker process as soon as Redis shows the job
   * marked aborted, while the abort is canceling its executions; then restart it. What the abort did
   * not cancel, the store's guard and the rollout controller must.
   */
  abortMidway: boolean;
  timeScale: number;
  seed: number;
  faults: Partial<Record<FaultKind, number>>;
  /** Where process logs go; default a temp dir that is removed afterwards. */
  logDir?: string;
  timeoutMs: number;
  progress?: (line: string) => void;
}

export const DEFAULT_CHAOS: ChaosOptions = {
  sites: 240,
  workers: 3,
  workerKills: 6,
  restartBroker: true,
  restartRedis: true,
  abortMidway: true,
  timeScale: 10,
  seed: 7,
  faults: { checksumMismatch: 0.01, notUpdatable: 0.01, noResponse: 0.01, dropMidDownload: 0.03, slowLink: 0.02, returnsOldVersion: 0.005, neverReturns: 0.005 },
  timeoutMs: 20 * 60_000,
};

export interface ChaosAction {
  action: string;
  atMs: number;
  /** Time until the work the action interrupted was picked up again (re-attached or progressing). */
  recoveryMs: number | null;
}

export interface ChaosReport {
  devices: number;
  executions: number;
  terminal: number;
  lost: number;
  byState: Record<string, number>;
  /** Executions that did not succeed, per error code (`checksum-mismatch`, `canceled`…). */
  byError: Record<string, number>;
  /** Waits for a busy site (a GX and its products take turns), and how many executions waited at least once. */
  siteWaits: { waits: number; executions: number };
  /**
   * (device, execution) pairs whose device started the update more than once, or got an install request
   * (a distinct RPC id: the orchestrator sent it again) after it had started the update. Must be 0.
   */
  repeatedInstalls: number;
  /** Those pairs in detail: each install delivery the device saw (time, RPC id, outcome). */
  repeated: string[];
  /**
   * Install requests delivered more than once under the same RPC id: MQTT QoS 1 redelivery after a
   * broker restart, answered as a duplicate by the device's idempotency. Allowed; counted.
   */
  redelivered: number;
  /**
   * (device, execution) pairs whose install was sent again before the device had accepted any: the
   * worker that sent it died with its answer (a refusal, say), and the one re-attaching found the
   * device not running the execution. Allowed (nothing had started; the device accepts one at most); counted.
   */
  resentBeforeStart: number;
  succeeded: number;
  onNewVersion: number;
  /** Devices where "succeeded" and "really on the new version" disagree. */
  mismatches: string[];
  /** Executions recorded `canceled` whose device nevertheless got their install request. Must be none. */
  canceledButInstalled: string[];
  /** The job aborted midway (`abortMidway`): its executions by state at the end, and how many were canceled when the api died. */
  aborted: { jobId: string; byState: Record<string, number>; canceledBeforeKill: number } | null;
  /** Devices behind a GX that never came back: nothing they did can be observed, so not compared. */
  unobservable: number;
  reattached: number;
  /** Executions not terminal at the end (should be none): state, phase, attempt, last update. */
  stuck: string[];
  /** BullMQ's view of the executions queue at the end. */
  queue: Record<string, number>;
  actions: ChaosAction[];
  wallMs: number;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const o = options;
  const say = o.progress ?? (() => undefined);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ff-chaos-'));
  const logDir = o.logDir ?? tmp;
  await mkdir(logDir, { recursive: true });
  const [redisPort, httpPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
  const operatorToken = `op-${randomBytes(12).toString('hex')}`;
  const common = {
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    QUEUE_PREFIX: 'chaos',
    SIGNING_SECRET: randomBytes(32).toString('hex'),
    MQTT_SERVICE_PASSWORD: randomBytes(16).toString('hex'),
    API_TOKENS: `operator:${operatorToken}`,
    LOG_LEVEL: 'info',
    FIRMWARE_DIR: path.join(tmp, 'firmware'),
    LOCK_DURATION_MS: '20000',
    STALLED_INTERVAL_MS: '5000',
    HOST: '127.0.0.1',
  };
  const redis = redisServer(redisPort, tmp, path.join(logDir, 'redis.log'));
  const api = fleetflashProcess('api+broker', { ...common, ROLE: 'api,broker', PORT: String(httpPort), MQTT_PORT: String(mqttPort) }, path.join(logDir, 'api.log'));
  const workers: ManagedProcess[] = [];
  for (let i = 0; i < o.workers; i++) {
    workers.push(
      fleetflashProcess(
        `worker-${i + 1}`,
        { ...common, ROLE: 'worker', MQTT_URL: `mqtt://127.0.0.1:${mqttPort}`, PUBLIC_URL: `http://127.0.0.1:${httpPort}`, WORKER_CONCURRENCY: '1000' },
        path.join(logDir, `worker-${i + 1}.log`),
      ),
    );
  }
  const base = `http://127.0.0.1:${httpPort}`;
  const http = async <T>(method: string, p: string, body?: unknown, raw?: Buffer): Promise<T> => {
    const headers: Record<string, string> = { authorization: `Bearer ${operatorToken}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (raw) headers['content-type'] = 'application/octet-stream';
    const res = await fetch(`${base}${p}`, { method, headers, body: raw ? new Blob([new Uint8Array(raw)]) : body !== undefined ? JSON.stringify(body) : undefined });
    if (!res.ok) throw new Error(`${method} ${p} → ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  let fleet: Fleet | null = null;
  const started = Date.now();
  try {
    await redis.start();
    await api.start();
    for (const w of workers) await w.start();
    say(`processes up: redis :${redisPort}, api+broker :${httpPort}/:${mqttPort}, ${workers.length} workers (logs in ${logDir})`);

    const images: FirmwareRecord[] = [];
    for (const spec of DEMO_IMAGES.filter((i) => !i.version.includes('~'))) {
      const q = new URLSearchParams({ version: spec.version, products: spec.productIds.map((p) => p.toString(16)).join(','), name: spec.name });
      images.push((await http<{ firmware: FirmwareRecord }>('POST', `/api/firmware?${q}`, undefined, imageBytes(spec.name, spec.version, spec.sizeBytes))).firmware);
    }

    // Register the sites like an installer would and connect them.
    const { portalIdsFor } = await import('../../devices-sim/index.js');
    const ids = portalIdsFor(o.sites, o.seed, 'chaos');
    const secrets = new Map<string, string>();
    for (let i = 0; i < ids.length; i += 1000) {
      const r = await http<{ sites: { portalId: string; secret: string }[] }>('POST', '/api/sites', { sites: ids.slice(i, i + 1000).map((portalId) => ({ portalId })) });
      for (const s of r.sites) secrets.set(s.portalId, s.secret);
    }
    fleet = await startFleet({
      url: `mqtt://127.0.0.1:${mqttPort}`,
      sites: o.sites,
      seed: o.seed,
      portalIdSalt: 'chaos',
      timeScale: o.timeScale,
      faults: o.faults,
      credentials: (id) => secrets.get(id) ?? '',
      reconnect: { minMs: 200, maxMs: 2000 },
    });
    const f = fleet;
    const all = f.devices();
    await until(async () => {
      const { devices } = await http<{ devices: DeviceRecord[] }>('GET', '/api/devices');
      return devices.filter((d) => d.online && d.version).length >= all.length;
    }, 60_000, 'inventory');
    say(`fleet up: ${o.sites} sites, ${all.length} devices`);

    // One job per image over every device it fits.
    // Device work is time-compressed, but outages (a service restarting on a loaded 2-core box) last
    // real seconds: timeouts keep a real-time floor, so they catch dead devices, not slow restarts.
    const scaled = (realSec: number, floorSec: number) => Math.max(floorSec * 1000, Math.round((realSec * 1000) / o.timeScale));
    const timeouts = {
      preflightMs: 60_000,
      downloadingMs: scaled(900, 240),
      verifyingMs: scaled(120, 60),
      installingMs: scaled(1200, 240),
      rebootingMs: scaled(600, 120),
      confirmingMs: 60_000,
      totalMs: 20 * 60_000,
    };
    const jobs: JobRecord[] = [];
    const perImage = images
      .map((img) => ({ img, devices: all.filter((d) => img.productIds.includes(d.productId)).map((d) => d.deviceId) }))
      .filter((x) => x.devices.length > 0);
    // The job to abort midway: a fifth of the largest product job (never the GXs: their reboots are the
    // harshest part of the run), in a job of its own released two at a time, so most of it still waits.
    const products = perImage
      .filter((x) => x.devices.length >= 16 && x.devices.every((id) => parseDeviceId(id)?.service !== 'platform'))
      .sort((a, b) => b.devices.length - a.devices.length)[0];
    const abortSlice = o.abortMidway && products ? products.devices.splice(0, Math.max(8, Math.ceil(products.devices.length / 5))) : [];
    const launchedAt = Date.now();
    for (const { img, devices } of perImage) {
      jobs.push((await http<{ job: JobRecord }>('POST', '/api/jobs', { firmwareId: img.id, devices, timeouts })).job);
    }
    const abortTarget = abortSlice.length
      ? (await http<{ job: JobRecord }>('POST', '/api/jobs', { firmwareId: products!.img.id, devices: abortSlice, timeouts, rollout: { maxConcurrent: 2 } })).job
      : null;
    if (abortTarget) jobs.push(abortTarget);
    let canceledBeforeKill = 0;
    const requested = jobs.reduce((n, j) => n + j.total, 0);
    say(`launched ${jobs.length} jobs, ${requested} executions`);

    const snapshot = async () => {
      const out: { jobs: JobRecord[]; executions: ExecutionRecord[] } = { jobs: [], executions: [] };
      for (const j of jobs) {
        const r = await http<{ job: JobRecord; executions: ExecutionRecord[] }>('GET', `/api/jobs/${j.id}`);
        out.jobs.push(r.job);
        out.executions.push(...r.executions);
      }
      return out;
    };
    const progressSum = async () => (await snapshot()).jobs.reduce((n, j) => n + j.seq, 0);

    // Which executions a worker process holds right now (BullMQ records processedBy = host:pid).
    const held = async (pid: number | undefined): Promise<ExecutionRecord[]> => {
      const redisClient = new Redis(common.REDIS_URL, { maxRetriesPerRequest: 3 });
      const queue = new Queue(EXECUTION_QUEUE, { connection: redisClient, prefix: common.QUEUE_PREFIX });
      try {
        const active = await queue.getActive();
        const mine = active.filter((j) => pid !== undefined && j.processedBy?.endsWith(`:${pid}`));
        const snap = await snapshot();
        const ids = new Set(mine.map((j) => j.id));
        return snap.executions.filter((e) => ids.has(e.executionId));
      } finally {
        await queue.close();
        redisClient.disconnect();
      }
    };
    /** Time from `t0` until every orphan was taken over by another worker (attempt grew) or ended. */
    const recovery = async (orphans: ExecutionRecord[], t0: number): Promise<number | null> => {
      if (!orphans.length) return null;
      await until(async () => {
        const now = new Map((await snapshot()).executions.map((e) => [e.executionId, e]));
        return orphans.every((o) => {
          const e = now.get(o.executionId);
          return !!e && (e.attempt > o.attempt || isTerminalExecutionState(e.state));
        });
      }, 300_000, 'orphans to be re-attached');
      return Date.now() - t0;
    };
    const recoveries: Promise<void>[] = [];

    // The chaos: worker kills at random moments, one broker restart, one Redis restart.
    const actions: ChaosAction[] = [];
    const rng = mulberry(o.seed);
    const plan: string[] = [];
    for (let k = 0; k < o.workerKills; k++) plan.push('kill-worker');
    if (o.restartBroker) plan.splice(Math.min(2, plan.length), 0, 'restart-broker');
    if (o.restartRedis) plan.splice(Math.min(5, plan.length), 0, 'restart-redis');
    if (abortTarget) plan.splice(Math.min(1, plan.length), 0, 'abort-kill-api');
    for (const step of plan) {
      await sleep(800 + rng() * 1500);
      const at = Date.now() - launchedAt;
      if (step === 'kill-worker') {
        const w = workers[Math.floor(rng() * workers.length)];
        const orphans = await retry(() => held(w.pid));
        const t0 = Date.now();
        await w.kill('SIGKILL');
        const action: ChaosAction = { action: `SIGKILL ${w.name} holding ${orphans.length} executions`, atMs: at, recoveryMs: null };
        actions.push(action);
        say(`t=${(at / 1000).toFixed(1)}s ${action.action}`);
        recoveries.push(recovery(orphans, t0).then((ms) => void (action.recoveryMs = ms), () => void (action.recoveryMs = -1)));
        await w.start();
      } else if (step === 'abort-kill-api' && abortTarget) {
        const keys = createKeys(common.QUEUE_PREFIX);
        const redisClient = new Redis(common.REDIS_URL, { maxRetriesPerRequest: 3 });
        const before = Date.now();
        try {
          // The response never comes: the process dies while it cancels.
          const request = http('POST', `/api/jobs/${abortTarget.id}/abort`).catch(() => undefined);
          while ((await redisClient.hget(keys.job(abortTarget.id), 'state')) !== 'aborted') {
            if (Date.now() - before > 10_000) throw new Error('the abort was never marked');
          }
          await api.kill('SIGKILL');
          await request;
          const records = Object.values(await redisClient.hgetall(keys.jobExecutions(abortTarget.id))).map((v) => JSON.parse(v) as ExecutionRecord);
          canceledBeforeKill = records.filter((e) => e.state === 'canceled').length;
          await api.start();
          const action: ChaosAction = {
            action: `abort ${abortTarget.id}, SIGKILL api,broker after ${canceledBeforeKill} of ${records.length} executions canceled`,
            atMs: at,
            recoveryMs: null,
          };
          actions.push(action);
          say(`t=${(at / 1000).toFixed(1)}s ${action.action}`);
          // Recovered once every execution of the job has ended (the rest canceled by the guard or the rollout controller).
          recoveries.push(
            until(async () => !!(await http<{ job: JobRecord }>('GET', `/api/jobs/${abortTarget.id}`)).job.finishedAt, 300_000, 'the aborted job to end').then(
              () => void (action.recoveryMs = Date.now() - before),
              () => void (action.recoveryMs = -1),
            ),
          );
        } finally {
          redisClient.disconnect();
        }
      } else {
        const target = step === 'restart-broker' ? api : redis;
        const before = Date.now();
        await target.kill('SIGKILL');
        await target.start();
        say(`t=${(at / 1000).toFixed(1)}s ${step} (down ${Date.now() - before} ms)`);
        const seq0 = await retry(progressSum);
        await until(async () => (await retry(progressSum)) > seq0, 60_000, `progress after ${step}`).catch(() => undefined);
        actions.push({ action: step, atMs: at, recoveryMs: Date.now() - before });
      }
    }

    await until(
      async () => (await snapshot()).jobs.every((j) => j.state === 'completed' || (j.state === 'aborted' && j.finishedAt !== null)),
      o.timeoutMs,
      'every job to finish',
    ).catch(() => undefined);
    await Promise.all(recoveries);
    const final = await snapshot();

    const events: JobEvent[] = [];
    for (const j of jobs) {
      for (let after = 0; ; ) {
        const r = await http<{ events: JobEvent[]; nextAfter: number }>('GET', `/api/jobs/${j.id}/events?after=${after}&limit=1000`);
        events.push(...r.events);
        if (r.events.length < 1000) break;
        after = r.nextAfter;
      }
    }
    const reattach = events.filter((e) => e.message.startsWith('worker re-attached'));

    const byState = countBy(final.executions, (e) => e.state);
    const byError = countBy(
      final.executions.filter((e) => e.state !== 'succeeded'),
      (e) => e.error?.code ?? 'none',
    );
    const waited = final.executions.filter((e) => (e.siteWaits ?? 0) > 0);
    const siteWaits = { waits: waited.reduce((n, e) => n + e.siteWaits!, 0), executions: waited.length };
    const terminal = final.executions.filter((e) => isTerminalExecutionState(e.state)).length;
    const repeated: string[] = [];
    let redelivered = 0;
    let resentBeforeStart = 0;
    for (const e of final.executions) {
      const deliveries = f.truth.installCount(e.deviceId, e.executionId);
      const requests = f.truth.requestCount(e.deviceId, e.executionId);
      redelivered += deliveries - requests;
      if (f.truth.acceptedCount(e.deviceId, e.executionId) <= 1 && f.truth.requestsAfterStart(e.deviceId, e.executionId) === 0) {
        if (requests > 1) resentBeforeStart++;
        continue;
      }
      const seen = f.truth.device(e.deviceId)!.installs.filter((i) => i.executionId === e.executionId);
      repeated.push(`${e.deviceId} ${e.executionId} ${e.state}: ${seen.map((i) => `${new Date(i.at).toISOString()} ${i.rpcId} ${i.outcome}`).join(', ')}`);
    }
    const stuck = final.executions
      .filter((e) => !isTerminalExecutionState(e.state))
      .map((e) => `${e.executionId} ${e.state}/${e.phase} attempt ${e.attempt} seq ${e.seq} updated ${e.updatedAt}`);
    const queueCounts = await (async () => {
      const redisClient = new Redis(common.REDIS_URL, { maxRetriesPerRequest: 3 });
      const queue = new Queue(EXECUTION_QUEUE, { connection: redisClient, prefix: common.QUEUE_PREFIX });
      try {
        return await queue.getJobCounts();
      } finally {
        await queue.close();
        redisClient.disconnect();
      }
    })();
    const canceledButInstalled = final.executions
      .filter((e) => e.state === 'canceled' && f.truth.installCount(e.deviceId, e.executionId) > 0)
      .map((e) => `${e.executionId}: ${f.truth.installCount(e.deviceId, e.executionId)} install request(s) at the device`);
    const versionNow = new Map(f.devices().map((d) => [d.deviceId, d.version]));
    const mismatches: string[] = [];
    let onNewVersion = 0;
    let unobservable = 0;
    for (const e of final.executions) {
      const portalId = e.deviceId.slice(0, 12);
      if (f.site(portalId)?.dead && e.state !== 'succeeded') {
        unobservable++;
        continue;
      }
      const really = versionNow.get(e.deviceId) === e.toVersion && !f.truth.device(e.deviceId)?.degraded;
      if (really) onNewVersion++;
      if (really !== (e.state === 'succeeded')) mismatches.push(`${e.deviceId}: ${e.state}, device on ${versionNow.get(e.deviceId)}`);
    }
    return {
      devices: all.length,
      executions: final.executions.length,
      terminal,
      lost: requested - terminal,
      byState,
      byError,
      siteWaits,
      repeatedInstalls: repeated.length,
      repeated,
      redelivered,
      resentBeforeStart,
      succeeded: byState.succeeded ?? 0,
      onNewVersion,
      mismatches,
      canceledButInstalled,
      aborted: abortTarget
        ? { jobId: abortTarget.id, byState: countBy(final.executions.filter((e) => e.jobId === abortTarget.id), (e) => e.state), canceledBeforeKill }
        : null,
      unobservable,
      reattached: reattach.length,
      stuck,
      queue: queueCounts,
      actions,
      wallMs: Date.now() - started,
    };
  } finally {
    await fleet?.stop();
    for (const w of workers) await w.stop();
    await api.stop();
    await redis.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Executions per `key` (state, error code). */
function countBy(executions: readonly ExecutionRecord[], key: (e: ExecutionRecord) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of executions) out[key(e)] = (out[key(e)] ?? 0) + 1;
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** Retries a read while the api or Redis is restarting. */
async function retry<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
