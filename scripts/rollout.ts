/**
 * `npm run rollout -- --devices 2000 --faults 0.03 [options]`
 *
 * One rollout over a simulated fleet, in one process: the service (api, broker, worker with the
 * rollout controller) on free ports against the local Redis under a fresh key prefix, simulated GX
 * sites whose MPPT solar chargers take the update, a share of them off the bus at launch (retried
 * before the point of no return), and Victron's faults injected at the given rate. The job is
 * launched over the REST API with maxConcurrent, perMinute, a canary wave and an abort rule; the
 * final summary puts the orchestrator's counts next to the simulator's ground truth.
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import '../src/quiet-debug.js';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import {
  faultApplies,
  FAULT_KINDS,
  portalIdsFor,
  startFleet,
  type FaultKind,
  type Fleet,
} from '../devices-sim/index.js';
import { parseConfig } from '../src/config.js';
import { seedFirmware } from '../src/demo/seed-firmware.js';
import { isTerminalExecutionState, type ExecutionRecord, type JobRecord } from '../src/protocol/index.js';
import { startService, type Service } from '../src/service/service.js';

const USAGE = `usage: npm run rollout -- [--devices 2000] [--faults 0.03] [options]
  --devices N          MPPT solar chargers to update (default 2000)
  --per-site N         MPPTs per simulated GX site (default 2)
  --faults R           share of installs with an injected fault, spread over Victron's fault kinds (default 0.03)
  --offline R          share of devices off the bus at launch (taken early in the release order),
                       back after --offline-s seconds: retried before the point of no return (default 0.005)
  --offline-s S        (default 20)
  --max-concurrent N   (default 200)
  --per-minute N       (default 1500)
  --canary C           first wave: a count or a share such as 2% (default 2%)
  --canary-success P   success rate the canary needs, percent (default 85)
  --abort-percent P    abort once this share of finished executions failed (default 10)
  --abort-min N        …after at least this many finished (default 100)
  --time-scale X       simulated durations divided by X (default 1000)
  --seed N             same seed, same fleet and faults (default 1)
  --log-level L        service log level on stderr (default error)`;

const { values } = parseArgs({
  options: {
    devices: { type: 'string' },
    'per-site': { type: 'string' },
    faults: { type: 'string' },
    offline: { type: 'string' },
    'offline-s': { type: 'string' },
    'max-concurrent': { type: 'string' },
    'per-minute': { type: 'string' },
    canary: { type: 'string' },
    'canary-success': { type: 'string' },
    'abort-percent': { type: 'string' },
    'abort-min': { type: 'string' },
    'time-scale': { type: 'string' },
    seed: { type: 'string' },
    'log-level': { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function num(name: keyof typeof values, fallback: number, min: number, max: number): number {
  const raw = values[name];
  const v = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`rollout: --${name} must be a number in ${min}..${max}, got ${String(raw)}\n\n${USAGE}`);
    process.exit(2);
  }
  return v;
}

const opts = {
  devices: Math.floor(num('devices', 2000, 1, 20_000)),
  perSite: Math.floor(num('per-site', 2, 1, 32)),
  faults: num('faults', 0.03, 0, 1),
  offline: num('offline', 0.005, 0, 1),
  offlineMs: num('offline-s', 20, 0, 600) * 1000,
  maxConcurrent: Math.floor(num('max-concurrent', 200, 1, 100_000)),
  perMinute: Math.floor(num('per-minute', 1500, 1, 100_000)),
  canary: values.canary ?? '2%',
  canarySuccess: num('canary-success', 85, 0, 100),
  abortPercent: num('abort-percent', 10, 0.001, 100),
  abortMin: Math.floor(num('abort-min', 100, 1, 1_000_000)),
  timeScale: num('time-scale', 1000, 1, 100_000),
  seed: Math.floor(num('seed', 1, 0, 2 ** 31)),
  logLevel: values['log-level'] ?? 'error',
};
const canary = /^\d+$/.test(opts.canary) ? Number(opts.canary) : opts.canary;

// The simulator aborts every download of the fleet through one signal: hundreds listen at once.
setMaxListeners(0);

const MPPT = 0xa058;
const say = (line: string) => console.log(`[rollout] ${line}`);

/** The fault rate spread evenly over the kinds that can happen to an MPPT. */
function faultRates(total: number): Partial<Record<FaultKind, number>> {
  const kinds = FAULT_KINDS.filter((k) => faultApplies(k, 'solarcharger'));
  return Object.fromEntries(kinds.map((k) => [k, total / kinds.length]));
}

/** Most accepted installs in any 60 s window, from the devices' own records. */
function maxPerMinute(times: number[]): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] >= 60_000) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

async function main(): Promise<void> {
  const started = Date.now();
  const prefix = `rollout-${randomBytes(4).toString('hex')}`;
  const firmwareDir = await mkdtemp(path.join(os.tmpdir(), 'ff-rollout-'));
  const operatorToken = `op-${randomBytes(12).toString('hex')}`;
  const config = parseConfig({
    ROLE: 'api,broker,worker',
    PORT: '0',
    MQTT_PORT: '0',
    HOST: '127.0.0.1',
    QUEUE_PREFIX: prefix,
    SIGNING_SECRET: randomBytes(32).toString('hex'),
    MQTT_SERVICE_PASSWORD: randomBytes(16).toString('hex'),
    API_TOKENS: `operator:${operatorToken}`,
    FIRMWARE_DIR: firmwareDir,
    LOG_LEVEL: opts.logLevel,
    RPC_TIMEOUT_MS: '5000',
    MAX_DEVICES_PER_JOB: String(Math.max(20_000, opts.devices)),
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  });
  const logger = pino({ level: config.logLevel }, pino.destination(2));
  let service: Service | null = null;
  let fleet: Fleet | null = null;
  try {
    service = await startService(config, logger, { statusPollMs: 500 });
    const images = await seedFirmware(service.firmware, undefined, 'rollout');
    const image = images.find((i) => i.productIds.includes(MPPT) && !i.version.includes('~'))!;

    const sites = Math.ceil(opts.devices / opts.perSite);
    const portalIds = portalIdsFor(sites, opts.seed, 'rollout');
    const secrets = new Map(
      (
        await service.sites.register(
          portalIds.map((portalId) => ({ portalId })),
          'rollout',
        )
      ).map((s) => [s.portalId, s.secret]),
    );
    say(
      `starting ${sites} simulated sites (${opts.perSite} MPPTs each, ×${opts.timeScale} time), faults ${(opts.faults * 100).toFixed(1)} %`,
    );
    const f = await startFleet({
      url: service.mqttUrl,
      sites,
      seed: opts.seed,
      portalIdSalt: 'rollout',
      timeScale: opts.timeScale,
      mix: { vebus: 0, battery: 0, solarcharger: opts.perSite },
      faults: faultRates(opts.faults),
      credentials: (portalId) => secrets.get(portalId) ?? '',
    });
    fleet = f;
    const mppts = f
      .devices()
      .filter((d) => d.service === 'solarcharger')
      .slice(0, opts.devices);
    const targets = mppts.map((d) => d.deviceId);
    for (;;) {
      const known = await service.devices.getMany(targets);
      if (known.every((d) => d && d.online && d.version)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    say(`inventory has all ${targets.length} MPPTs (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    // Some products are off the bus at launch and come back later: retried before the point of no return.
    // Taken every 20th early in the release order (a filter releases by device id), so they are released while off.
    const simDevices = new Map(f.sites.flatMap((s) => s.devices).map((d) => [d.deviceId, d]));
    const offline = [...targets]
      .sort()
      .filter((_, i) => i % 20 === 0)
      .slice(0, Math.round(opts.offline * targets.length))
      .map((id) => simDevices.get(id)!);
    for (const d of offline) d.online = false;
    const back = setTimeout(() => {
      for (const d of offline) d.online = true;
    }, opts.offlineMs);

    const api = async <T>(method: string, pathname: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${service!.httpUrl}${pathname}`, {
        method,
        headers: {
          authorization: `Bearer ${operatorToken}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      const json = (await res.json()) as T;
      if (!res.ok) throw new Error(`${method} ${pathname} → ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    const request = {
      firmwareId: image.id,
      filter: { products: [MPPT], sites: [...new Set(mppts.map((d) => d.portalId))] },
      rollout: {
        maxConcurrent: opts.maxConcurrent,
        perMinute: opts.perMinute,
        waves: { canary, successThresholdPercent: opts.canarySuccess },
      },
      abort: { failureThresholdPercent: opts.abortPercent, minExecuted: opts.abortMin },
      retry: { maxAttempts: 3, backoffMs: 2000 },
      // Real durations are divided by the time scale, so these are generous; rebooting is the one a lost device hits.
      timeouts: {
        preflightMs: 10_000,
        downloadingMs: 60_000,
        verifyingMs: 10_000,
        installingMs: 30_000,
        rebootingMs: 5000,
        confirmingMs: 10_000,
        totalMs: 300_000,
      },
    };
    const launchAt = Date.now();
    const { job } = await api<{ job: JobRecord }>('POST', '/api/jobs', request);
    say(
      `launched ${job.id}: ${job.total} executions (${Date.now() - launchAt} ms to 202), ${offline.length} devices off the bus for ${opts.offlineMs / 1000} s`,
    );

    let final: { job: JobRecord; executions: ExecutionRecord[] };
    let lastPrint = 0;
    for (;;) {
      const view = await api<{ job: JobRecord; executions: ExecutionRecord[] }>('GET', `/api/jobs/${job.id}`);
      // Finished: completed or aborted, and every execution ended (an abort cancels them one by one).
      if (view.job.finishedAt && view.executions.every((e) => isTerminalExecutionState(e.state))) {
        final = view;
        break;
      }
      if (Date.now() - lastPrint >= 5000) {
        lastPrint = Date.now();
        const c = view.job.counts;
        say(
          `${((Date.now() - launchAt) / 1000).toFixed(0).padStart(4)} s  released ${view.job.release.released}/${view.job.release.eligible}` +
            ` in flight ${view.job.release.inFlight} (devices updating now ${f.truth.updatingNow()})  succeeded ${c.succeeded} failed ${c.failed}` +
            ` timed_out ${c.timed_out} rejected ${c.rejected} retries ${view.job.release.retries}  wave ${view.job.release.wave ?? '-'}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const wallMs = Date.now() - launchAt;
    clearTimeout(back);
    printSummary(final, f, job.id, image.version, wallMs, Date.now() - started);
  } finally {
    await fleet?.stop();
    await service?.close();
    await deletePrefix(config.redisUrl, prefix);
    await rm(firmwareDir, { recursive: true, force: true });
  }
}

function printSummary(
  view: { job: JobRecord; executions: ExecutionRecord[] },
  fleet: Fleet,
  jobId: string,
  version: string,
  wallMs: number,
  totalMs: number,
): void {
  const { job } = view;
  const truth = fleet.truth.executions().filter((e) => e.jobId === jobId);
  const onNew = new Set(fleet.truth.devicesOnVersion(version));
  const succeededButNotOnNew = view.executions.filter(
    (e) => e.state === 'succeeded' && !onNew.has(e.deviceId),
  ).length;
  const onNewButNotSucceeded = view.executions.filter(
    (e) => e.state !== 'succeeded' && onNew.has(e.deviceId),
  ).length;
  const retried = view.executions.filter((e) => (e.retries ?? 0) > 0);
  const errors = Object.entries(job.errorCounts).sort((a, b) => b[1] - a[1]);
  const faults = new Map<string, number>();
  for (const e of truth) if (e.fault) faults.set(e.fault, (faults.get(e.fault) ?? 0) + 1);
  const lines = [
    '',
    `════════ rollout ${jobId}: ${job.state}${job.abortReason ? ` (${job.abortReason})` : ''}`,
    `devices          ${job.total}   image ${job.firmwareName} ${version}`,
    `rollout          maxConcurrent ${job.rollout.maxConcurrent}, perMinute ${job.rollout.perMinute}, canary ${String(job.rollout.waves?.canary)} @ ${job.rollout.waves?.successThresholdPercent} %, abort ${job.abort?.failureThresholdPercent} % after ${job.abort?.minExecuted}`,
    `per state        ${Object.entries(job.counts)
      .map(([s, n]) => `${s} ${n}`)
      .join(', ')}`,
    `per error code   ${errors.length ? errors.map(([c, n]) => `${c} ${n}`).join(', ') : '(none)'}`,
    `canary           ${job.release.canarySucceeded}/${job.release.canarySize} succeeded → wave ${job.release.wave}`,
    `retries          ${job.release.retries} re-queued attempts (${retried.length} executions, ${retried.filter((e) => e.state === 'succeeded').length} of them then succeeded); after the point of no return: 0 by design`,
    '── ground truth (the simulated devices) ──',
    `max concurrent   ${fleet.truth.maxConcurrentUpdates()} devices updating at once (limit ${job.rollout.maxConcurrent})`,
    `max per minute   ${maxPerMinute(truth.map((e) => e.acceptedAt))} installs accepted in any 60 s (limit ${job.rollout.perMinute})`,
    `installs         ${truth.length} accepted, at most ${fleet.truth.maxInstallsPerExecution()} install request(s) per execution; injected faults: ${[...faults].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    `on ${version}         ${onNew.size} devices; reported succeeded but not on it: ${succeededButNotOnNew}; on it but not reported succeeded: ${onNewButNotSucceeded}`,
    `wall time        ${(wallMs / 1000).toFixed(1)} s from launch to the last execution (${(totalMs / 1000).toFixed(1)} s with setup)`,
    '',
  ];
  console.log(lines.join('\n'));
}

async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    await redis.quit();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('rollout failed:', err);
    process.exit(1);
  },
);
