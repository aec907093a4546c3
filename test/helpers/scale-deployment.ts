/**
 * A fleetflash deployment as separate OS processes for the scale-out tests: a private redis-server,
 * any number of api,broker instances and worker processes (scripts/lib/processes.ts), sharing one
 * Redis, one queue prefix and one set of secrets, as they would across machines. Workers get a
 * `METRICS_PORT` listener, so readiness is their `/readyz`. Logs go to a temp dir that is removed on
 * close unless `KEEP_SCALE_LOGS` is set.
 *
 * `src/main.ts` is bundled once with esbuild (dependencies left external) instead of each process
 * compiling the sources through tsx: five processes then start in seconds on two cores, not half a minute.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { DEMO_IMAGES, imageBytes } from '../../src/demo/seed-firmware.js';
import { portalIdsFor, startFleet, type Fleet } from '../../devices-sim/index.js';
import type { DeviceRecord, FirmwareRecord } from '../../src/protocol/index.js';
import { freePort, ManagedProcess, redisServer, ROOT } from '../../scripts/lib/processes.js';
import { SMARTSOLAR } from './api-fixtures.js';
import { waitFor } from './service-harness.js';

export interface ApiInstance {
  name: string;
  proc: ManagedProcess;
  base: string;
  httpPort: number;
  mqttPort: number;
  mqttUrl: string;
}

export interface WorkerInstance {
  name: string;
  proc: ManagedProcess;
  metricsPort: number;
}

export interface ScaleOptions {
  apis: number;
  workers: number;
  /** Environment of every process. */
  env?: Record<string, string>;
  /** Extra environment of api instance `i`. */
  apiEnv?: (i: number) => Record<string, string>;
  /** Extra environment of worker `i` (default: MQTT_URL of api `i % apis`), given the started api instances. */
  workerEnv?: (i: number, apis: readonly ApiInstance[]) => Record<string, string>;
}

export interface SolarFleetOptions {
  sites: number;
  solarPerSite: number;
  seed: number;
  salt: string;
  timeScale: number;
  /** How long the inventory may take (default 20 s). */
  inventoryMs?: number;
}

export interface ScaleDeployment {
  redisUrl: string;
  prefix: string;
  operatorToken: string;
  viewerToken: string;
  logDir: string;
  apis: ApiInstance[];
  workers: WorkerInstance[];
  call<T>(api: ApiInstance, method: string, pathname: string, body?: unknown, token?: string): Promise<T>;
  /** Uploads the demo image that fits `productId` through `api`. */
  uploadImage(api: ApiInstance, productId: number): Promise<FirmwareRecord>;
  /** Registers sites through `api`; returns their secrets. */
  registerSites(api: ApiInstance, portalIds: string[]): Promise<Map<string, string>>;
  /**
   * Registers `sites` sites through `api` and connects them to its broker, each with `solarPerSite`
   * SmartSolar chargers and nothing else; resolves once `api`'s inventory lists every one online.
   */
  connectSolarFleet(api: ApiInstance, options: SolarFleetOptions): Promise<{ fleet: Fleet; solar: string[] }>;
  close(): Promise<void>;
}

function readyz(port: number): () => Promise<boolean> {
  return () => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
}

/** Bundles the entry point into the repository (so its bare imports resolve from node_modules). */
async function bundleMain(): Promise<string> {
  const dir = path.join(ROOT, 'node_modules', '.cache', 'fleetflash-scale');
  await mkdir(dir, { recursive: true });
  const outfile = path.join(dir, `main-${process.pid}-${randomBytes(3).toString('hex')}.mjs`);
  await build({ entryPoints: [path.join(ROOT, 'src/main.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile, logLevel: 'warning' });
  return outfile;
}

function serviceProcess(main: string, name: string, env: Record<string, string>, logFile: string, ready: () => Promise<boolean>): ManagedProcess {
  return new ManagedProcess(name, process.execPath, [main], { ...process.env, ...env }, logFile, ready);
}

export async function startScaleDeployment(options: ScaleOptions): Promise<ScaleDeployment> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ff-scale-'));
  const redisPort = await freePort();
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const prefix = `s${randomBytes(3).toString('hex')}`;
  const operatorToken = `op-${randomBytes(12).toString('hex')}`;
  const viewerToken = `view-${randomBytes(12).toString('hex')}`;
  const common: Record<string, string> = {
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    SIGNING_SECRET: randomBytes(32).toString('hex'),
    MQTT_SERVICE_PASSWORD: randomBytes(16).toString('hex'),
    API_TOKENS: `operator:${operatorToken},viewer:${viewerToken}`,
    // Every api instance serves the same image bytes: one directory, as a shared volume would be.
    FIRMWARE_DIR: path.join(tmp, 'firmware'),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    LOCK_DURATION_MS: '4000',
    STALLED_INTERVAL_MS: '1500',
    RPC_TIMEOUT_MS: '3000',
    ...options.env,
  };
  const redis = redisServer(redisPort, tmp, path.join(tmp, 'redis.log'));
  const apis: ApiInstance[] = [];
  const workers: WorkerInstance[] = [];
  const main = await bundleMain();
  const close = async () => {
    await Promise.all(workers.map((w) => w.proc.stop()));
    await Promise.all(apis.map((a) => a.proc.stop()));
    await redis.stop();
    await rm(main, { force: true });
    if (!process.env.KEEP_SCALE_LOGS) await rm(tmp, { recursive: true, force: true });
  };
  try {
    await redis.start();
    for (let i = 0; i < options.apis; i++) {
      const [httpPort, mqttPort] = [await freePort(), await freePort()];
      const name = `api-${String.fromCharCode(97 + i)}`;
      const env = { ...common, ROLE: 'api,broker', PORT: String(httpPort), MQTT_PORT: String(mqttPort), ...options.apiEnv?.(i) };
      const proc = serviceProcess(main, name, env, path.join(tmp, `${name}.log`), readyz(httpPort));
      apis.push({ name, proc, base: `http://127.0.0.1:${httpPort}`, httpPort, mqttPort, mqttUrl: `mqtt://127.0.0.1:${mqttPort}` });
    }
    await Promise.all(apis.map((a) => a.proc.start(60_000)));
    for (let i = 0; i < options.workers; i++) {
      const metricsPort = await freePort();
      const name = `worker-${i + 1}`;
      const api = apis[i % apis.length];
      const env = {
        ...common,
        ROLE: 'worker',
        METRICS_PORT: String(metricsPort),
        ...(api ? { MQTT_URL: api.mqttUrl, PUBLIC_URL: api.base } : {}),
        ...options.workerEnv?.(i, apis),
      };
      workers.push({ name, proc: serviceProcess(main, name, env, path.join(tmp, `${name}.log`), readyz(metricsPort)), metricsPort });
    }
    await Promise.all(workers.map((w) => w.proc.start(60_000)));
  } catch (err) {
    process.stderr.write(`scale deployment failed to start; logs in ${tmp}\n`);
    process.env.KEEP_SCALE_LOGS ??= '1';
    await close();
    throw err;
  }

  const registerSites: ScaleDeployment['registerSites'] = async (api, portalIds) => {
    const secrets = new Map<string, string>();
    for (let i = 0; i < portalIds.length; i += 1000) {
      const r = await call<{ sites: { portalId: string; secret: string }[] }>(api, 'POST', '/api/sites', {
        sites: portalIds.slice(i, i + 1000).map((portalId) => ({ portalId })),
      });
      for (const s of r.sites) secrets.set(s.portalId, s.secret);
    }
    return secrets;
  };

  const call = async <T>(api: ApiInstance, method: string, pathname: string, body?: unknown, token = operatorToken): Promise<T> => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    let payload: BodyInit | undefined;
    if (body instanceof Uint8Array) {
      headers['content-type'] = 'application/octet-stream';
      payload = new Blob([new Uint8Array(body)]);
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await fetch(`${api.base}${pathname}`, { method, headers, body: payload });
    if (!res.ok) throw new Error(`${api.name} ${method} ${pathname} → ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  return {
    redisUrl,
    prefix,
    operatorToken,
    viewerToken,
    logDir: tmp,
    apis,
    workers,
    call,
    async uploadImage(api, productId) {
      const spec = DEMO_IMAGES.find((i) => i.productIds.includes(productId) && !i.version.includes('~'));
      if (!spec) throw new Error(`no demo image for product ${productId}`);
      const q = new URLSearchParams({ version: spec.version, products: spec.productIds.map((p) => p.toString(16)).join(','), name: spec.name });
      return (await call<{ firmware: FirmwareRecord }>(api, 'POST', `/api/firmware?${q}`, imageBytes(spec.name, spec.version, spec.sizeBytes))).firmware;
    },
    registerSites,
    async connectSolarFleet(api, o) {
      const secrets = await registerSites(api, portalIdsFor(o.sites, o.seed, o.salt));
      const fleet = await startFleet({
        url: api.mqttUrl,
        sites: o.sites,
        seed: o.seed,
        portalIdSalt: o.salt,
        timeScale: o.timeScale,
        mix: { vebus: 0, solarcharger: o.solarPerSite, battery: 0 },
        credentials: (id) => secrets.get(id) ?? '',
      });
      const solar = fleet.devices().filter((x) => x.productId === SMARTSOLAR).map((x) => x.deviceId);
      await waitFor(async () => {
        const { devices } = await call<{ devices: DeviceRecord[] }>(api, 'GET', '/api/devices');
        const ready = new Set(devices.filter((x) => x.online && x.version).map((x) => x.deviceId));
        return solar.every((id) => ready.has(id));
      }, o.inventoryMs ?? 20_000, `the inventory of ${solar.length} chargers on ${api.name}`);
      return { fleet, solar };
    },
    close,
  };
}
