/**
 * Configuration: parsed once from the environment into a frozen, typed object.
 * Nothing else reads `process.env`. A bad value throws a ConfigError naming the variable.
 */
import { ConfigError } from './errors.js';
import type { ExecutionTimeouts } from './protocol/index.js';
import { parseSentinels, type SentinelAddress } from './store/redis-connection.js';

export const ROLES = ['api', 'broker', 'worker'] as const;
export type Role = (typeof ROLES)[number];
export type OperatorRole = 'viewer' | 'operator';

export interface ApiToken {
  role: OperatorRole;
  token: string;
  /** Stable, non-secret name for logs and the audit trail. */
  name: string;
}

export interface Config {
  roles: ReadonlySet<Role>;
  /** HTTP port of the API, portal and MQTT-over-WebSocket (0 picks a free one). */
  port: number;
  host: string;
  /** URL devices use to reach this service's HTTP server (firmware downloads). */
  publicUrl: string | null;
  /** TCP listener of the embedded broker. Not 1883: that port is usually taken by a system Mosquitto. */
  mqttPort: number;
  /** Whether the broker also listens for plain (unencrypted) MQTT on {@link mqttPort}; false needs {@link tls}. */
  mqttPlain: boolean;
  /** MQTT over TLS listener of the embedded broker, when {@link tls} is set. */
  mqttsPort: number;
  /**
   * Certificate files: when set, the HTTP server is HTTPS (and MQTT over WebSocket is WSS) and the
   * broker also listens for MQTT over TLS on {@link mqttsPort}. Null: plain HTTP and MQTT only.
   */
  tls: TlsFiles | null;
  /**
   * CA certificate(s) the service's own MQTT clients trust when `MQTT_URL` is `mqtts://` or `wss://`
   * (e.g. a private CA); null: the system's roots. Independent of {@link tls}: worker-only processes need it too.
   */
  tlsCaFile: string | null;
  /** CONNECT attempts allowed per client address per minute (0 = no limit). */
  mqttConnectRatePerMin: number;
  /** Largest MQTT packet the broker reads from a client; a larger one closes the connection. */
  mqttMaxPacketBytes: number;
  /** Entries the audit trail keeps (oldest dropped first). */
  auditMaxEntries: number;
  /**
   * How long a finished job's records stay retained on the broker (its status and execution topics)
   * before they are cleared; the API keeps serving them. 0: kept for as long as the broker keeps them.
   */
  retainedJobTtlMs: number;
  /**
   * How long after it finished a job stays in Redis (record, executions, log) before an api process
   * deletes it; the API then answers 404 for it. 0: kept for good. When set, `retainedJobTtlMs` must be
   * set and no longer.
   */
  jobRetentionMs: number;
  /** Broker the workers connect to; default: the embedded one. */
  mqttUrl: string | null;
  /**
   * MQTT-over-WebSocket URL handed to browsers by `/api/mqtt-credentials` when the broker is not embedded
   * in this process (an external broker, or a separate broker tier); null: this process's own `/mqtt`.
   */
  mqttBrowserUrl: string | null;
  /**
   * `redis`: the embedded broker keeps retained messages and sessions in Redis (aedes-persistence-redis) and
   * routes messages between instances through Redis pub/sub (mqemitter-redis), so several api,broker
   * instances behave as one broker. `none`: in memory, one instance.
   */
  brokerCluster: 'none' | 'redis';
  /** This broker instance's id in a cluster (unique per instance); null: generated at start. */
  brokerId: string | null;
  /** Port of a small HTTP listener with `/metrics`, `/healthz`, `/readyz` for any role (no token); null: none. */
  metricsPort: number | null;
  /** Port of the auth hook an external broker calls (api/broker-auth-server.ts); null: none. */
  brokerAuthPort: number | null;
  /** Bearer token the auth hook requires of every call; null: none. */
  brokerAuthToken: string | null;
  mqttServiceUser: string;
  mqttServicePassword: string;
  /** The Redis server, or (with sentinels) the master's credentials, database and TLS. */
  redisUrl: string;
  /** Sentinels that name the current master (`REDIS_SENTINELS`); null: `redisUrl` is the server. */
  redisSentinels: readonly SentinelAddress[] | null;
  redisSentinelName: string;
  redisSentinelPassword: string | null;
  /** Prefix of every Redis key and BullMQ queue: keeps tests and deployments apart on one Redis. */
  queuePrefix: string;
  apiTokens: readonly ApiToken[];
  /** Secret that signs browser MQTT tokens and firmware download tokens. */
  signingSecret: string;
  browserTokenTtlMs: number;
  downloadTokenTtlMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  firmwareDir: string;
  maxFirmwareBytes: number;
  /** Memory for small images sent to devices from RAM instead of disk (0: every download reads the file). */
  firmwareCacheBytes: number;
  maxDevicesPerJob: number;
  workerConcurrency: number;
  /** Executions one worker process lets through their start at once (0: no limit): src/queue/start-window.ts. */
  workerStartWindow: number;
  /** BullMQ lock: how long an execution stays with a worker without renewal before another may take it. */
  lockDurationMs: number;
  stalledIntervalMs: number;
  /** How long a worker waits for a device to answer one RPC. */
  rpcTimeoutMs: number;
  defaultTimeouts: ExecutionTimeouts;
}

/** Paths of PEM files for TLS. */
export interface TlsFiles {
  /** Certificate chain (leaf first) the servers present. */
  certFile: string;
  keyFile: string;
}

type Env = Record<string, string | undefined>;

const DEFAULT_TIMEOUTS: ExecutionTimeouts = {
  preflightMs: 30_000,
  downloadingMs: 15 * 60_000,
  verifyingMs: 2 * 60_000,
  installingMs: 20 * 60_000,
  rebootingMs: 10 * 60_000,
  confirmingMs: 2 * 60_000,
  totalMs: 60 * 60_000,
};

export function parseConfig(env: Env = process.env): Readonly<Config> {
  const roles = parseRoles(env.ROLE);
  const port = int(env, 'PORT', 3000, 0, 65535);
  const host = str(env, 'HOST', '0.0.0.0');
  const signingSecret = env.SIGNING_SECRET ?? '';
  if (signingSecret !== '' && signingSecret.length < 32) {
    throw new ConfigError('SIGNING_SECRET', 'must be at least 32 characters');
  }
  const mqttServicePassword = env.MQTT_SERVICE_PASSWORD ?? '';
  const config: Config = {
    roles,
    port,
    host,
    publicUrl: optionalUrl(env, 'PUBLIC_URL', ['http:', 'https:']),
    mqttPort: int(env, 'MQTT_PORT', 1884, 0, 65535),
    mqttPlain: bool(env, 'MQTT_PLAIN', true),
    mqttsPort: int(env, 'MQTTS_PORT', 8883, 0, 65535),
    tls: parseTlsFiles(env),
    tlsCaFile: env.TLS_CA_FILE || null,
    // Off by default: 10,000 sites behind one NAT address (or the simulator on 127.0.0.1) would trip
    // any per-address limit that is useful against a single guesser. See the README for production values.
    mqttConnectRatePerMin: int(env, 'MQTT_CONNECT_RATE_PER_MIN', 0, 0, 10_000_000),
    mqttMaxPacketBytes: int(env, 'MQTT_MAX_PACKET_BYTES', 256 * 1024, 1024, 256 * 1024 * 1024),
    auditMaxEntries: int(env, 'AUDIT_MAX_ENTRIES', 10_000, 100, 10_000_000),
    retainedJobTtlMs: int(env, 'RETAINED_JOB_TTL_MS', 24 * 3600_000, 0, 365 * 86_400_000),
    jobRetentionMs: int(env, 'JOB_RETENTION_MS', 0, 0, 3650 * 86_400_000),
    mqttUrl: optionalUrl(env, 'MQTT_URL', ['mqtt:', 'mqtts:', 'tcp:', 'ws:', 'wss:']),
    mqttBrowserUrl: optionalUrl(env, 'MQTT_BROWSER_URL', ['ws:', 'wss:']),
    brokerCluster: oneOf(env, 'BROKER_CLUSTER', 'none', ['none', 'redis']),
    brokerId: env.BROKER_ID ? match(env, 'BROKER_ID', '', /^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _, . or -') : null,
    metricsPort: env.METRICS_PORT ? int(env, 'METRICS_PORT', 0, 0, 65535) : null,
    brokerAuthPort: env.BROKER_AUTH_PORT ? int(env, 'BROKER_AUTH_PORT', 0, 0, 65535) : null,
    brokerAuthToken: parseBrokerAuthToken(env.BROKER_AUTH_TOKEN),
    mqttServiceUser: str(env, 'MQTT_SERVICE_USER', 'fleetflash-service'),
    mqttServicePassword,
    redisUrl: optionalUrl(env, 'REDIS_URL', ['redis:', 'rediss:']) ?? 'redis://127.0.0.1:6379',
    redisSentinels: sentinels(env),
    redisSentinelName: match(env, 'REDIS_SENTINEL_NAME', 'mymaster', /^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _, . or -'),
    redisSentinelPassword: env.REDIS_SENTINEL_PASSWORD || null,
    queuePrefix: match(env, 'QUEUE_PREFIX', 'ff', /^[A-Za-z0-9_-]{1,40}$/, 'letters, digits, _ or -'),
    apiTokens: parseApiTokens(env.API_TOKENS),
    signingSecret,
    browserTokenTtlMs: int(env, 'BROWSER_TOKEN_TTL_MS', 15 * 60_000, 1000, 24 * 3600_000),
    downloadTokenTtlMs: int(env, 'DOWNLOAD_TOKEN_TTL_MS', 2 * 3600_000, 1000, 7 * 24 * 3600_000),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    firmwareDir: str(env, 'FIRMWARE_DIR', '.data/firmware'),
    maxFirmwareBytes: int(env, 'MAX_FIRMWARE_BYTES', 256 * 1024 * 1024, 1, 4 * 1024 ** 3),
    firmwareCacheBytes: int(env, 'FIRMWARE_CACHE_BYTES', 64 * 1024 * 1024, 0, 16 * 1024 ** 3),
    maxDevicesPerJob: int(env, 'MAX_DEVICES_PER_JOB', 20_000, 1, 1_000_000),
    workerConcurrency: int(env, 'WORKER_CONCURRENCY', 2000, 1, 100_000),
    workerStartWindow: int(env, 'WORKER_START_WINDOW', 64, 0, 100_000),
    lockDurationMs: int(env, 'LOCK_DURATION_MS', 30_000, 1000, 3600_000),
    stalledIntervalMs: int(env, 'STALLED_INTERVAL_MS', 15_000, 500, 3600_000),
    rpcTimeoutMs: int(env, 'RPC_TIMEOUT_MS', 10_000, 100, 600_000),
    defaultTimeouts: {
      preflightMs: int(env, 'TIMEOUT_PREFLIGHT_MS', DEFAULT_TIMEOUTS.preflightMs, 100, 86_400_000),
      downloadingMs: int(env, 'TIMEOUT_DOWNLOADING_MS', DEFAULT_TIMEOUTS.downloadingMs, 100, 86_400_000),
      verifyingMs: int(env, 'TIMEOUT_VERIFYING_MS', DEFAULT_TIMEOUTS.verifyingMs, 100, 86_400_000),
      installingMs: int(env, 'TIMEOUT_INSTALLING_MS', DEFAULT_TIMEOUTS.installingMs, 100, 86_400_000),
      rebootingMs: int(env, 'TIMEOUT_REBOOTING_MS', DEFAULT_TIMEOUTS.rebootingMs, 100, 86_400_000),
      confirmingMs: int(env, 'TIMEOUT_CONFIRMING_MS', DEFAULT_TIMEOUTS.confirmingMs, 100, 86_400_000),
      totalMs: int(env, 'TIMEOUT_TOTAL_MS', DEFAULT_TIMEOUTS.totalMs, 100, 7 * 86_400_000),
    },
  };
  if (!config.signingSecret) {
    throw new ConfigError('SIGNING_SECRET', 'is required (it signs browser and firmware download tokens; api, broker and workers share it)');
  }
  if (!config.mqttServicePassword) {
    throw new ConfigError('MQTT_SERVICE_PASSWORD', 'is required (workers and the broker share it)');
  }
  if (!config.mqttPlain && !config.tls) {
    throw new ConfigError('MQTT_PLAIN', 'false needs TLS_CERT_FILE and TLS_KEY_FILE (else the broker would have no listener)');
  }
  if (roles.has('api') && config.apiTokens.length === 0) {
    throw new ConfigError('API_TOKENS', 'needs at least one role:token for the api role');
  }
  // The broker lets go of a job's retained records before Redis lets go of the job: it never holds
  // records of a job the API answers 404 for.
  if (config.jobRetentionMs > 0 && (config.retainedJobTtlMs === 0 || config.retainedJobTtlMs > config.jobRetentionMs)) {
    throw new ConfigError(
      'JOB_RETENTION_MS',
      `needs RETAINED_JOB_TTL_MS between 1 and JOB_RETENTION_MS (${config.jobRetentionMs}), got ${config.retainedJobTtlMs}: a job's retained records leave the broker before the job leaves Redis`,
    );
  }
  // A worker hands devices a download URL. Without PUBLIC_URL it is this host's PORT, where an api
  // process serves the images; a broker,worker process's PORT answers only browsers and probes, so
  // every device would get a 404 there and fail its download.
  if (roles.has('worker') && roles.has('broker') && !roles.has('api') && config.publicUrl === null) {
    throw new ConfigError('PUBLIC_URL', "is required for ROLE=broker,worker (its PORT serves no firmware: give the api's URL)");
  }
  return Object.freeze(config);
}

function parseRoles(value: string | undefined): ReadonlySet<Role> {
  const list = (value ?? 'api,broker,worker').split(',').map((r) => r.trim()).filter(Boolean);
  if (list.length === 0) throw new ConfigError('ROLE', 'must name at least one role');
  for (const r of list) {
    if (!(ROLES as readonly string[]).includes(r)) {
      throw new ConfigError('ROLE', `unknown role "${r}" (expected ${ROLES.join(', ')})`);
    }
  }
  return new Set(list as Role[]);
}

/** `API_TOKENS=viewer:abc,operator:def` */
export function parseApiTokens(value: string | undefined): ApiToken[] {
  if (!value) return [];
  return value.split(',').map((entry, i) => {
    const idx = entry.indexOf(':');
    const role = entry.slice(0, idx).trim();
    const token = entry.slice(idx + 1).trim();
    if (idx < 0 || (role !== 'viewer' && role !== 'operator')) {
      throw new ConfigError('API_TOKENS', `entry ${i + 1} must be viewer:<token> or operator:<token>`);
    }
    if (token.length < 16) throw new ConfigError('API_TOKENS', `entry ${i + 1}: tokens need at least 16 characters`);
    return { role, token, name: `${role}-${i + 1}` };
  });
}

function parseTlsFiles(env: Env): TlsFiles | null {
  const certFile = env.TLS_CERT_FILE || null;
  const keyFile = env.TLS_KEY_FILE || null;
  if (!certFile && !keyFile) return null;
  if (!certFile) throw new ConfigError('TLS_CERT_FILE', 'is required when TLS_KEY_FILE is set');
  if (!keyFile) throw new ConfigError('TLS_KEY_FILE', 'is required when TLS_CERT_FILE is set');
  return { certFile, keyFile };
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(name, `must be true or false, got "${v}"`);
}

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  return v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  if (!/^\d+$/.test(v)) throw new ConfigError(name, `must be a whole number, got "${v}"`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  if (!(allowed as readonly string[]).includes(v)) throw new ConfigError(name, `must be one of ${allowed.join(', ')}`);
  return v as T;
}

function match(env: Env, name: string, fallback: string, re: RegExp, what: string): string {
  const v = str(env, name, fallback);
  if (!re.test(v)) throw new ConfigError(name, `must be ${what}, got "${v}"`);
  return v;
}

function sentinels(env: Env): SentinelAddress[] | null {
  const v = env.REDIS_SENTINELS;
  if (v === undefined || v.trim() === '') return null;
  try {
    return parseSentinels(v);
  } catch (err) {
    throw new ConfigError('REDIS_SENTINELS', (err as Error).message);
  }
}

function optionalUrl(env: Env, name: string, protocols: string[]): string | null {
  const v = env[name];
  if (v === undefined || v === '') return null;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new ConfigError(name, `is not a URL: "${v}"`);
  }
  if (!protocols.includes(url.protocol)) throw new ConfigError(name, `must use ${protocols.join(' or ')}`);
  return v.replace(/\/+$/, '');
}

function parseBrokerAuthToken(value: string | undefined): string | null {
  if (!value) return null;
  if (value.length < 16) throw new ConfigError('BROKER_AUTH_TOKEN', 'must be at least 16 characters');
  return value;
}
