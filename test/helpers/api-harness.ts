/**
 * The REST API against real Redis and a real BullMQ queue, on port 0, with a unique key prefix,
 * a temporary firmware directory, logs captured in memory, and full teardown.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createRequestListener, type ApiDeps } from '../../src/api/app.js';
import { AuditLog } from '../../src/audit/audit-log.js';
import { OperatorAuth } from '../../src/auth/operator-auth.js';
import { TokenSigner } from '../../src/auth/tokens.js';
import { parseConfig, type Config } from '../../src/config.js';
import { abortJob, cancelExecution } from '../../src/jobs/abort.js';
import { FirmwareUsage } from '../../src/jobs/firmware-usage.js';
import { JobLauncher } from '../../src/jobs/launcher.js';
import { createExecutionQueue, type ExecutionJobData } from '../../src/queue/execution-queue.js';
import { systemClock } from '../../src/rollout/clock.js';
import { RolloutStore } from '../../src/rollout/rollout-store.js';
import { DeviceStore } from '../../src/store/device-store.js';
import { FirmwareStore } from '../../src/store/firmware-store.js';
import { JobStore } from '../../src/store/job-store.js';
import { createKeys, type Keys } from '../../src/store/keys.js';
import { SiteStore } from '../../src/store/site-store.js';
import { deleteKeys } from './redis-keys.js';

export const REDIS = { host: '127.0.0.1', port: 6379 };
export const VIEWER_TOKEN = 'viewer-token-0123456789abcdef';
export const OPERATOR_TOKEN = 'operator-token-0123456789abcdef';

/** A captured pino line. */
export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** Knobs a test flips to drive readiness and the broker URL. */
export interface HarnessState {
  ready: boolean;
  brokerAvailable: boolean;
}

export interface AbortCall {
  jobId: string;
  by: string;
}

export class ApiHarness {
  readonly logs: LogLine[] = [];
  /** Raw log text, to prove secrets never reach it. */
  logText = '';
  readonly state: HarnessState = { ready: true, brokerAvailable: true };
  readonly abortCalls: AbortCall[] = [];
  readonly #servers: http.Server[] = [];
  baseUrl = '';

  private constructor(
    readonly config: Readonly<Config>,
    readonly redis: Redis,
    readonly keys: Keys,
    readonly queue: Queue<ExecutionJobData>,
    readonly deps: ApiDeps,
  ) {}

  /** Starts the API with `env` on top of the defaults (unique QUEUE_PREFIX, temp FIRMWARE_DIR, small limits). */
  static async start(env: Record<string, string> = {}): Promise<ApiHarness> {
    const prefix = `t-api-${randomBytes(4).toString('hex')}`;
    const firmwareDir = await mkdtemp(path.join(os.tmpdir(), 'ff-api-fw-'));
    const config = parseConfig({
      ROLE: 'api',
      SIGNING_SECRET: 'test-signing-secret-0123456789abcdef',
      MQTT_SERVICE_PASSWORD: 'service-password',
      API_TOKENS: `viewer:${VIEWER_TOKEN},operator:${OPERATOR_TOKEN}`,
      QUEUE_PREFIX: prefix,
      FIRMWARE_DIR: firmwareDir,
      MAX_FIRMWARE_BYTES: '65536',
      MAX_DEVICES_PER_JOB: '5',
      LOG_LEVEL: 'info',
      ...env,
    });
    const redis = new Redis({ ...REDIS, lazyConnect: false, maxRetriesPerRequest: 1 });
    const keys = createKeys(prefix);
    const queue = createExecutionQueue(REDIS, prefix);
    const holder: { harness?: ApiHarness } = {};
    const logger = pino(
      { level: 'info' },
      {
        write(line: string) {
          const h = holder.harness;
          if (!h) return;
          h.logText += line;
          h.logs.push(JSON.parse(line) as LogLine);
        },
      },
    );
    const jobs = new JobStore(redis, keys);
    const devices = new DeviceStore(redis, keys);
    const firmware = new FirmwareStore(redis, keys, config.firmwareDir, config.maxFirmwareBytes, config.firmwareCacheBytes);
    const sites = new SiteStore(redis, keys);
    const rollout = new RolloutStore(redis, keys);
    const usage = new FirmwareUsage(redis, keys, jobs, firmware, logger);
    const launcher = new JobLauncher({
      jobs,
      devices,
      rollout,
      usage,
      keys,
      publisher: null,
      defaultTimeouts: config.defaultTimeouts,
      maxDevicesPerJob: config.maxDevicesPerJob,
      clock: systemClock,
      logger,
    });
    const deps: ApiDeps = {
      config,
      logger,
      operators: new OperatorAuth(config.apiTokens),
      tokens: new TokenSigner(config.signingSecret),
      jobs,
      devices,
      firmware,
      sites,
      audit: new AuditLog(redis, keys, config.auditMaxEntries),
      launcher,
      // The real abort and cancel, recording the calls the API passes through.
      abort: async (jobId, by) => {
        holder.harness!.abortCalls.push({ jobId, by });
        return abortJob({ jobs, queue, publisher: null, logger }, jobId, by);
      },
      cancelExecution: (jobId, deviceId, by) => cancelExecution({ jobs, queue, publisher: null, logger }, jobId, deviceId, by),
      deleteFirmware: (firmwareId, by) => usage.delete(firmwareId, by),
      readiness: async () => {
        const redisOk = (await redis.ping()) === 'PONG';
        return {
          ok: holder.harness!.state.ready && redisOk,
          checks: { redis: redisOk, broker: holder.harness!.state.ready },
        };
      },
      mqttWsUrl: (req) => (holder.harness!.state.brokerAvailable ? `ws://${req.get('host')}/mqtt` : null),
      webDir: null,
    };
    const harness = new ApiHarness(config, redis, keys, queue, deps);
    holder.harness = harness;
    harness.baseUrl = await harness.listen({});
    return harness;
  }

  /** Another app over the same stores (fresh rate limiter), e.g. with a web dir or a mount hook. */
  async listen(overrides: Partial<ApiDeps>): Promise<string> {
    const server = http.createServer(createRequestListener({ ...this.deps, ...overrides }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Lines the request logger wrote. */
  requestLogs(): LogLine[] {
    return this.logs.filter((l) => l.msg === 'request');
  }

  async jobCount(): Promise<number> {
    return this.redis.zcard(this.keys.jobs());
  }

  /** Everything BullMQ holds for this queue, by state. */
  async queuedCount(): Promise<number> {
    const c = await this.queue.getJobCounts(
      'waiting',
      'delayed',
      'active',
      'prioritized',
      'waiting-children',
    );
    return Object.values(c).reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    await this.queue.obliterate({ force: true });
    await this.queue.close();
    await deleteKeys(this.redis, `${this.config.queuePrefix}:*`);
    await this.redis.quit();
    await rm(this.config.firmwareDir, { recursive: true, force: true });
  }
}

/** A response with its body parsed when it is JSON. */
export interface ApiResponse {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests assert response shapes structurally
  body: any;
}

/** `fetch` with a bearer token and JSON handling. */
export async function call(
  baseUrl: string,
  method: string,
  urlPath: string,
  opts: {
    token?: string | null;
    json?: unknown;
    body?: string | Uint8Array;
    headers?: Record<string, string>;
  } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  // A copy typed as ArrayBuffer-backed: fetch's BodyInit refuses views of SharedArrayBuffer-like memory.
  let body: BodyInit | undefined = opts.body instanceof Uint8Array ? new Uint8Array(opts.body) : opts.body;
  if (opts.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(baseUrl + urlPath, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('application/json') && text) parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: parsed };
}
