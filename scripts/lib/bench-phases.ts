/**
 * What one benchmark run measures, against a running cluster:
 * - throughput: one job over every solar charger; executions per second, wall time, CPU and memory;
 * - status latency: device progress event → the browser's copy of the execution record, with the
 *   rollout holding `latencyConcurrency` executions in flight;
 * - launch: concurrent `POST /api/jobs` (scheduled an hour ahead, so nothing runs), latency and rate.
 */
import { imageBytes } from '../../src/demo/seed-firmware.js';
import { parseExecutionId } from '../../src/protocol/index.js';
import { EXECUTION_QUEUE } from '../../src/queue/execution-queue.js';
import type { Cluster } from './bench-cluster.js';
import { procSample, procSamples } from './bench-proc.js';
import { monoUs, type ProgressSample } from './bench-sim.js';
import { latencySummary, neighboursMedian, p99BySecond, percentile, type SecondP99 } from './bench-stats.js';
import type { JobWatcher, ReceivedRecord } from './bench-watcher.js';

const SOLAR_CHARGER_PRODUCT = '0xA058';
const IMAGE_BYTES = 128 * 1024;
const TERMINAL = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'canceled']);

/** `fetch` against the service's API with the operator token; throws on a non-2xx answer. */
async function api<T>(c: Cluster, method: string, pathname: string, body?: unknown, raw?: Buffer): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${c.operatorToken}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (raw) headers['content-type'] = 'application/octet-stream';
  const res = await fetch(`${c.httpUrl}${pathname}`, { method, headers, body: raw ? new Uint8Array(raw) : body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${pathname}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

/** Uploads a solar charger image of `version` (deterministic bytes) through the API; returns its id. */
export async function uploadImage(c: Cluster, version: string): Promise<string> {
  const name = 'SmartSolar MPPT 150/35';
  const q = new URLSearchParams({ version, products: SOLAR_CHARGER_PRODUCT, name });
  const res = await api<{ firmware: { id: string } }>(c, 'POST', `/api/firmware?${q}`, undefined, imageBytes(name, version, IMAGE_BYTES));
  return res.firmware.id;
}

/** A VE.Direct version newer than any the simulator starts with: v2.00, v2.01, … (hex digits). */
export function imageVersion(n: number): string {
  const hex = (0x200 + n).toString(16);
  return `v${hex.slice(0, -2)}.${hex.slice(-2)}`;
}

async function launch(c: Cluster, body: Record<string, unknown>): Promise<{ id: string; ms: number }> {
  const t0 = performance.now();
  const res = await api<{ job: { id: string } }>(c, 'POST', '/api/jobs', body);
  return { id: res.job.id, ms: performance.now() - t0 };
}

interface JobPoll {
  state: string;
  finishedAt: string | null;
  inflight: number;
}

async function pollJob(c: Cluster, jobId: string): Promise<JobPoll> {
  const [state, finishedAt, inflight] = await c.redis.hmget(c.keys.job(jobId), 'state', 'finishedAt', 'inflight');
  return { state: state ?? 'missing', finishedAt, inflight: Number(inflight ?? 0) };
}

/** Every execution record of a job, straight from Redis (the API would serialize 10,000 of them). */
async function executionsOf(
  c: Cluster,
  jobId: string,
): Promise<{ executionId: string; state: string; finishedAt: string | null; startedAt: string | null }[]> {
  const h = await c.redis.hgetall(c.keys.jobExecutions(jobId));
  return Object.values(h).map((v) => JSON.parse(v) as { executionId: string; state: string; finishedAt: string | null; startedAt: string | null });
}

export interface ThroughputResult {
  executions: number;
  states: Record<string, number>;
  succeededPct: number;
  /** POST /api/jobs (this job) → the job's last terminal execution, ms. */
  wallMs: number;
  /** Executions finished per second between the 10th and the 90th percentile of finish times. */
  execPerSec: number;
  /** executions ÷ wall time. */
  execPerSecOverall: number;
  serviceCpuMsPerExec: number;
  /** The same per service process (in `Cluster.servicePids` order) when there are several. */
  serviceCpuMsPerExecByProcess: number[];
  /** Mosquitto's CPU per execution in mosquitto mode (0 with the embedded broker, which is in the service). */
  brokerCpuMsPerExec: number;
  redisCpuMsPerExec: number;
  simCpuMsPerExec: number;
  peakInflight: number;
  /** MQTT deliveries per execution: messages the sites sent and received, plus the browser's. */
  deliveriesPerExec: number;
  /** The same by who sent or got them, per execution. */
  deliveriesSplit: string;
  /** Those deliveries per second of wall time. */
  deliveriesPerSec: number;
  /** Redis commands per execution (INFO commandstats; a Lua script counts once, plus what it calls), and the top five. */
  redisCallsPerExec: number;
  redisTop: string;
  launchMs: number;
  /** When executions started and finished, seconds after POST (first, 10 %, 50 %, 90 %, last): where the wall goes. */
  timeline: string;
  /** The job log's lines per execution by kind (digits and ids stripped), the most frequent first: what the executions went through. */
  logKinds: string;
  /** What Redis kept per execution once the job ended, bytes (`used_memory` after − before), and its parts. */
  redisKept: RedisKept;
}

/**
 * Redis memory a finished job left, per execution, in bytes: all of it (`used_memory` after the job −
 * before), the job's own keys (`<prefix>:ff:job:<id>*`: its record, execution records, log and
 * release bookkeeping, kept until JOB_RETENTION_MS, off in the bench), what its devices' update histories grew by (each kept to its
 * last 100 entries, `HISTORY_LIMIT`), the queue's finished jobs of its executions and what its
 * lists grew by (BullMQ keeps the last 10,000 finished jobs and ~10,000 events), and the rest.
 */
export interface RedisKept {
  total: number;
  job: number;
  histories: number;
  queue: number;
  rest: number;
}

/** Redis's `used_memory`, bytes. */
async function redisUsedMemory(c: Cluster): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await c.redis.info('memory'))?.[1]);
}

/** `MEMORY USAGE` (every element counted) of each key, summed; a missing key counts 0. */
async function keysBytes(c: Cluster, keys: readonly string[]): Promise<number> {
  let total = 0;
  for (let i = 0; i < keys.length; i += 1000) {
    const pipe = c.redis.pipeline();
    for (const key of keys.slice(i, i + 1000)) pipe.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    for (const [err, bytes] of (await pipe.exec()) ?? []) if (!err) total += Number(bytes ?? 0);
  }
  return total;
}

/** The queue's own lists that grow with its jobs: finished job ids and its event stream (BullMQ caps it at ~10,000 events). */
function queueLists(c: Cluster): string[] {
  return ['completed', 'failed', 'events'].map((k) => `${c.prefix}:${EXECUTION_QUEUE}:${k}`);
}

/** The keys of one job (`<prefix>:ff:job:<id>` and below), found with SCAN. */
async function jobKeys(c: Cluster, jobId: string): Promise<string[]> {
  const found: string[] = [];
  const stream = c.redis.scanStream({ match: `${c.keys.job(jobId)}*`, count: 1000 });
  for await (const batch of stream) found.push(...(batch as string[]));
  return found;
}

/** Calls per Redis command so far (`cmdstat_evalsha:calls=12,…`). */
async function commandStats(c: Cluster): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await c.redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1], Number(m[2]));
  return out;
}

/** Waits for a job to end, sampling in-flight executions. */
async function followJob(c: Cluster, jobId: string, timeoutMs: number, onSample?: (p: JobPoll) => void | Promise<void>): Promise<JobPoll> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failed = c.failure();
    if (failed) throw new Error(failed);
    const p = await pollJob(c, jobId);
    await onSample?.(p);
    if (p.state === 'completed' || p.state === 'aborted') return p;
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not finish within ${timeoutMs} ms (state ${p.state}, ${p.inflight} in flight)`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Service memory per execution in flight, KB: (RSS with (nearly) `expectedInflight` executions in
 * flight − RSS before the job), both after a full GC of every service process, ÷ those executions;
 * NaN when the job never had that many in flight. One job over `devices`, watched by the browser as
 * in {@link throughput}. A phase of its own: the full GC pauses the service (the api,broker process
 * for 0.2-0.4 s at 10,000 sites), which inside the measured job cost its wall about a second.
 */
export async function inflightMemory(
  c: Cluster,
  watcher: JobWatcher,
  devices: readonly string[],
  firmwareId: string,
  expectedInflight: number,
): Promise<number> {
  const baseRss = await c.liveRss();
  const launched = await launch(c, { firmwareId, devices });
  await watcher.watch(launched.id);
  let kb = Number.NaN;
  await followJob(c, launched.id, 30 * 60_000, async (p) => {
    if (Number.isNaN(kb) && p.inflight >= 0.9 * expectedInflight) {
      const inflight = p.inflight;
      kb = ((await c.liveRss()) - baseRss) / 1024 / inflight;
    }
  });
  await watcher.unwatch(launched.id);
  return kb;
}

/** One job over `devices`; the browser watches it. */
export async function throughput(
  c: Cluster,
  watcher: JobWatcher,
  devices: readonly string[],
  firmwareId: string,
): Promise<ThroughputResult> {
  // Every run's job starts from a collected heap (a full GC of the service processes, before the clock starts).
  await c.liveRss();
  // Redis's memory first: its MEMORY USAGE calls are not the job's Redis commands and CPU.
  const memoryBefore = {
    redisUsed: await redisUsedMemory(c),
    histories: await keysBytes(c, devices.map((d) => c.keys.deviceHistory(d))),
    queueLists: await keysBytes(c, queueLists(c)),
  };
  const before = {
    service: (await procSamples(c.servicePids)).cpuMs,
    byProcess: await Promise.all(c.servicePids.map(async (pid) => (await procSample(pid)).cpuMs)),
    broker: c.brokerPid ? (await procSample(c.brokerPid)).cpuMs : 0,
    redis: (await procSample(c.redisPid)).cpuMs,
    sim: await c.sim.stats(),
    redisCalls: await commandStats(c),
  };
  watcher.takeCount();
  const t0 = Date.now();
  const launched = await launch(c, { firmwareId, devices });
  await watcher.watch(launched.id);
  let peakInflight = 0;
  const end = await followJob(c, launched.id, 30 * 60_000, (p) => {
    peakInflight = Math.max(peakInflight, p.inflight);
  });
  const after = {
    service: (await procSamples(c.servicePids)).cpuMs,
    byProcess: await Promise.all(c.servicePids.map(async (pid) => (await procSample(pid)).cpuMs)),
    broker: c.brokerPid ? (await procSample(c.brokerPid)).cpuMs : 0,
    redis: (await procSample(c.redisPid)).cpuMs,
    sim: await c.sim.stats(),
    redisCalls: await commandStats(c),
  };
  // Status messages still on their way when the job ended are part of its cost.
  await new Promise((r) => setTimeout(r, 500));
  const browserMessages = watcher.takeCount();
  await watcher.unwatch(launched.id);
  const redisUsed = await redisUsedMemory(c);
  const histories = (await keysBytes(c, devices.map((d) => c.keys.deviceHistory(d)))) - memoryBefore.histories;
  const jobBytes = await keysBytes(c, await jobKeys(c, launched.id));

  const execs = await executionsOf(c, launched.id);
  // BullMQ's key of a queue job: <prefix>:<queue>:<job id>, the execution id here (execution-queue.ts).
  const queueBytes =
    (await keysBytes(c, execs.map((e) => `${c.prefix}:${EXECUTION_QUEUE}:${e.executionId}`))) + (await keysBytes(c, queueLists(c))) - memoryBefore.queueLists;
  const states: Record<string, number> = {};
  for (const e of execs) states[e.state] = (states[e.state] ?? 0) + 1;
  const finished = execs.filter((e) => TERMINAL.has(e.state) && e.finishedAt).map((e) => Date.parse(e.finishedAt!));
  const lastFinish = end.finishedAt ? Date.parse(end.finishedAt) : Math.max(...finished);
  const wallMs = lastFinish - t0;
  const p10 = percentile(finished, 10);
  const p90 = percentile(finished, 90);
  const n = execs.length;
  const calls = [...after.redisCalls].map(([cmd, v]) => [cmd, (v - (before.redisCalls.get(cmd) ?? 0)) / n] as const).sort((a, b) => b[1] - a[1]);
  const sitesSent = after.sim.published - before.sim.published;
  const sitesGot = after.sim.received - before.sim.received;
  const deliveries = sitesSent + sitesGot + browserMessages;
  return {
    executions: n,
    states,
    succeededPct: (100 * (states.succeeded ?? 0)) / n,
    wallMs,
    execPerSec: p90 > p10 ? (0.8 * n) / ((p90 - p10) / 1000) : n / (wallMs / 1000),
    execPerSecOverall: n / (wallMs / 1000),
    serviceCpuMsPerExec: (after.service - before.service) / n,
    serviceCpuMsPerExecByProcess: after.byProcess.map((v, i) => (v - before.byProcess[i]) / n),
    brokerCpuMsPerExec: (after.broker - before.broker) / n,
    redisCpuMsPerExec: (after.redis - before.redis) / n,
    simCpuMsPerExec: (after.sim.cpuUs - before.sim.cpuUs) / 1000 / n,
    peakInflight,
    deliveriesPerExec: deliveries / n,
    deliveriesSplit: `sites sent ${(sitesSent / n).toFixed(1)}, sites got ${(sitesGot / n).toFixed(1)}, browser got ${(browserMessages / n).toFixed(1)}`,
    deliveriesPerSec: deliveries / (wallMs / 1000),
    redisCallsPerExec: calls.reduce((a, [, v]) => a + v, 0),
    redisTop: calls.slice(0, 6).map(([cmd, v]) => `${cmd} ${v.toFixed(1)}`).join(', '),
    launchMs: launched.ms,
    timeline: timeline(execs, t0),
    logKinds: await logKinds(c, launched.id, n),
    redisKept: {
      total: (redisUsed - memoryBefore.redisUsed) / n,
      job: jobBytes / n,
      histories: histories / n,
      queue: queueBytes / n,
      rest: (redisUsed - memoryBefore.redisUsed - jobBytes - histories - queueBytes) / n,
    },
  };
}

async function logKinds(c: Cluster, jobId: string, executions: number): Promise<string> {
  const counts = new Map<string, number>();
  for (const line of await c.redis.lrange(c.keys.jobEvents(jobId), 0, -1)) {
    const { message } = JSON.parse(line) as { message: string };
    const kind = message.replace(/\(.*?\)/g, '').replace(/[v]?[\d.~]+/g, '#').replace(/\s+/g, ' ').slice(0, 48).trim();
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${(v / executions).toFixed(2)} ${k}`)
    .join('; ');
}

function timeline(execs: { startedAt: string | null; finishedAt: string | null }[], t0: number): string {
  const spread = (label: string, at: number[]) => {
    if (at.length === 0) return `${label} -`;
    const s = (ms: number) => ((ms - t0) / 1000).toFixed(1);
    return `${label} ${s(Math.min(...at))}/${s(percentile(at, 10))}/${s(percentile(at, 50))}/${s(percentile(at, 90))}/${s(Math.max(...at))} s`;
  };
  const started = execs.filter((e) => e.startedAt).map((e) => Date.parse(e.startedAt!));
  const finished = execs.filter((e) => e.finishedAt).map((e) => Date.parse(e.finishedAt!));
  return `${spread('started', started)}, ${spread('finished', finished)} (first/10 %/50 %/90 %/last after POST)`;
}

export interface LatencyResult {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
  /** Device events with no matching record (the event changed nothing the browser sees). */
  unmatched: number;
  /** Median executions in flight while the samples were taken. */
  inflight: number;
  /**
   * Median devices updating meanwhile, by the simulator (install accepted, not finished): fewer than
   * in flight while executions wait for a start slot (WORKER_START_WINDOW) or in preflight.
   */
  updating: number;
  /** Each second's p99 (by when the device sent the event), in time order. */
  p99BySecond: SecondP99[];
  /**
   * How bunched the devices sent their events: the median count of other events sent within ±1 ms
   * of one (devices started together and running in lock step send theirs in the same moments).
   */
  neighbours: number;
  /** The measurement's window (monotonic microseconds, the clock V8 stamps CPU profile samples with). */
  windowUs: { from: number; to: number };
}

/**
 * Pairs each device progress event with the first execution record the browser received afterwards
 * for that device showing that phase and percentage.
 */
export function matchLatencies(
  sent: readonly ProgressSample[],
  received: readonly ReceivedRecord[],
  windowUs: [number, number],
): { latencies: number[]; sentUs: number[]; unmatched: number } {
  const byDevice = new Map<string, ReceivedRecord[]>();
  for (const r of received) {
    let list = byDevice.get(r[0]);
    if (!list) byDevice.set(r[0], (list = []));
    list.push(r);
  }
  const latencies: number[] = [];
  const sentAt: number[] = [];
  let unmatched = 0;
  for (const [executionId, phase, progress, sentUs] of sent) {
    if (sentUs < windowUs[0] || sentUs > windowUs[1]) continue;
    const { deviceId } = parseExecutionId(executionId);
    const match = byDevice.get(deviceId)?.find((r) => r[4] >= sentUs && r[1] === phase && r[2] === progress);
    if (match) {
      latencies.push((match[4] - sentUs) / 1000);
      sentAt.push(sentUs);
    } else unmatched++;
  }
  return { latencies, sentUs: sentAt, unmatched };
}

/** A job over `devices` with `concurrency` in flight; latency of every progress event in the steady part. */
export async function statusLatency(c: Cluster, watcher: JobWatcher, devices: readonly string[], firmwareId: string, concurrency: number): Promise<LatencyResult> {
  const launched = await launch(c, { firmwareId, devices, rollout: { maxConcurrent: concurrency } });
  await watcher.watch(launched.id);
  watcher.record(true);
  await c.sim.record(true);
  // The steady part: from the first to the last moment the rollout held (nearly) `concurrency` in flight.
  const full = Math.max(1, Math.floor(concurrency * 0.95));
  let windowStart = Number.POSITIVE_INFINITY;
  let windowEnd = 0;
  const inflight: number[] = [];
  const updating: number[] = [];
  await followJob(c, launched.id, 30 * 60_000, async (p) => {
    if (p.inflight >= full) {
      const now = monoUs();
      windowStart = Math.min(windowStart, now);
      windowEnd = now;
      inflight.push(p.inflight);
      updating.push((await c.sim.stats()).updating);
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  await c.sim.record(false);
  watcher.record(false);
  await watcher.unwatch(launched.id);
  const sent = await c.sim.samples();
  const received = watcher.takeRecords();
  const { latencies, sentUs, unmatched } = matchLatencies(sent, received, [windowStart, windowEnd]);
  const s = latencySummary(latencies);
  return {
    p50Ms: s.p50,
    p99Ms: s.p99,
    maxMs: s.max,
    samples: s.n,
    unmatched,
    inflight: percentile(inflight, 50),
    updating: percentile(updating, 50),
    p99BySecond: p99BySecond(sentUs, latencies, windowStart),
    neighbours: neighboursMedian(sentUs, 1000),
    windowUs: { from: windowStart, to: windowEnd },
  };
}

export interface LaunchResult {
  p50Ms: number;
  p99Ms: number;
  perSec: number;
  launches: number;
  clients: number;
}

/** `launches` jobs of `size` devices from `clients` concurrent clients; every one aborted afterwards. */
export async function launchRate(c: Cluster, devices: readonly string[], firmwareId: string, clients: number, launches: number, size: number): Promise<LaunchResult> {
  const startAt = new Date(Date.now() + 3600_000).toISOString();
  const ms: number[] = [];
  const ids: string[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = next++; i < launches; i = next++) {
        const from = (i * size) % Math.max(1, devices.length - size);
        const r = await launch(c, { firmwareId, devices: devices.slice(from, from + size), schedule: { startAt } });
        ms.push(r.ms);
        ids.push(r.id);
      }
    }),
  );
  const elapsed = performance.now() - t0;
  // Scheduled jobs would be looked at by every rollout sweep of the next measurement: end them.
  let k = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = k++; i < ids.length; i = k++) await api(c, 'POST', `/api/jobs/${ids[i]}/abort`);
    }),
  );
  const s = latencySummary(ms);
  return { p50Ms: s.p50, p99Ms: s.p99, perSec: launches / (elapsed / 1000), launches, clients };
}
