/**
 * Options of a simulated fleet: the public `FleetOptions`, their defaults, and one validation pass
 * that names the bad option. Everything else reads the frozen `ResolvedFleetOptions`.
 */
import { pino, type Logger } from 'pino';
import { resolveDurations, TimeScale, type SimDurations } from './durations.js';
import { validateFaultRates, validateTimingSpread, type FaultKind, type FaultRates } from './fault-plan.js';
import { validateMix, type InitialVersions, type ProductKind, type ProductMix } from './site-plan.js';

export interface FleetOptions {
  /** Broker URL, e.g. `mqtt://127.0.0.1:1883`. */
  url: string;
  /** Number of sites (GX devices), each one MQTT connection. */
  sites: number;
  /** Same seed → same portal ids, products, versions and faults. Default 1. */
  seed?: number;
  /** Real durations are divided by this. Default 1; tests use 1000–5000. */
  timeScale?: number;
  /** Per-site count of each product kind besides the GX; unset kinds: vebus 1, solarcharger 1–2 (seeded), battery 1. */
  mix?: Partial<Record<ProductKind, number>>;
  /** Probability 0..1 per install of each fault; at most one fault per install, so they add up to ≤ 1. */
  faults?: Partial<Record<FaultKind, number>>;
  /**
   * Each install runs at its own pace: its durations (download, verify, install, reboot) times a
   * factor drawn per install (seeded) from [1 − timingSpread, 1 + timingSpread]. Default 0: every
   * device of a kind takes exactly the same time, and devices started together report in lock step.
   */
  timingSpread?: number;
  /** MQTT password of a site; the username is its portal id. Called at every connection attempt. */
  credentials: (portalId: string) => string | Promise<string>;
  /** Client id is `${clientIdPrefix}${portalId}`. Default `gx-`. */
  clientIdPrefix?: string;
  /** New connections (and reconnections) per second across the fleet. Default 500. */
  connectRatePerSec?: number;
  /** Mixed into portal-id generation so parallel tests get distinct fleets. */
  portalIdSalt?: string;
  /** Default: silent. */
  logger?: Logger;
  /** What the devices run at start, per service type or per device; default: seeded realistic versions. */
  initialVersions?: InitialVersions;
  /** Overrides of real-world durations (before scaling), e.g. `{ aliveSec: 10 }`. */
  durations?: Partial<SimDurations>;
  /** `startFleet` resolves only once every site is connected. Default true. */
  waitForConnect?: boolean;
  /** How long `startFleet` waits for every site. Default: 30 s plus three times the time the connect rate needs. */
  connectTimeoutMs?: number;
  /** Reconnect back-off after an unexpected disconnect: full jitter between half and all of min·2ⁿ, capped. */
  reconnect?: { minMs?: number; maxMs?: number };
  /** MQTT keepalive (PINGREQ interval) in real seconds, not scaled. Default 60. */
  mqttKeepaliveSec?: number;
}

export interface ResolvedFleetOptions {
  readonly url: string;
  readonly sites: number;
  readonly seed: number;
  readonly time: TimeScale;
  readonly mix: Readonly<ProductMix>;
  readonly faults: Readonly<FaultRates>;
  readonly timingSpread: number;
  readonly credentials: (portalId: string) => string | Promise<string>;
  readonly clientIdPrefix: string;
  readonly connectRatePerSec: number;
  readonly portalIdSalt: string;
  readonly logger: Logger;
  readonly initialVersions: InitialVersions | undefined;
  readonly durations: Readonly<SimDurations>;
  readonly waitForConnect: boolean;
  readonly connectTimeoutMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly mqttKeepaliveSec: number;
}

export const DEFAULT_CONNECT_RATE_PER_SEC = 500;

/** Applies defaults and checks every option; throws a RangeError naming the first bad one. */
export function resolveFleetOptions(options: FleetOptions): ResolvedFleetOptions {
  const o = options;
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new RangeError(`url '${o.url}' is not a URL`);
  }
  if (!['mqtt:', 'tcp:', 'ws:', 'wss:', 'mqtts:'].includes(url.protocol))
    throw new RangeError(`url protocol ${url.protocol} is not MQTT`);
  if (!Number.isInteger(o.sites) || o.sites < 0)
    throw new RangeError(`sites must be an integer >= 0, got ${o.sites}`);
  const seed = o.seed ?? 1;
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  if (typeof o.credentials !== 'function')
    throw new RangeError('credentials must be a function of the portal id');
  const rate = o.connectRatePerSec ?? DEFAULT_CONNECT_RATE_PER_SEC;
  if (!(rate > 0)) throw new RangeError(`connectRatePerSec must be > 0, got ${rate}`);
  const clientIdPrefix = o.clientIdPrefix ?? 'gx-';
  if (/[+#/]/.test(clientIdPrefix))
    throw new RangeError(`clientIdPrefix '${clientIdPrefix}' must not contain + # /`);
  const reconnectMinMs = o.reconnect?.minMs ?? 500;
  const reconnectMaxMs = o.reconnect?.maxMs ?? 30_000;
  if (!(reconnectMinMs > 0) || !(reconnectMaxMs >= reconnectMinMs)) {
    throw new RangeError(`reconnect needs 0 < minMs <= maxMs, got ${reconnectMinMs}..${reconnectMaxMs}`);
  }
  const keepalive = o.mqttKeepaliveSec ?? 60;
  if (!Number.isInteger(keepalive) || keepalive < 0)
    throw new RangeError(`mqttKeepaliveSec must be an integer >= 0`);
  const connectTimeoutMs = o.connectTimeoutMs ?? 30_000 + Math.ceil((o.sites / rate) * 3000);
  if (!(connectTimeoutMs > 0)) throw new RangeError(`connectTimeoutMs must be > 0`);
  return Object.freeze({
    url: o.url,
    sites: o.sites,
    seed,
    time: new TimeScale(o.timeScale ?? 1),
    mix: validateMix(o.mix),
    faults: validateFaultRates(o.faults),
    timingSpread: validateTimingSpread(o.timingSpread ?? 0),
    credentials: o.credentials,
    clientIdPrefix,
    connectRatePerSec: rate,
    portalIdSalt: o.portalIdSalt ?? '',
    logger: o.logger ?? pino({ level: 'silent' }),
    initialVersions: o.initialVersions,
    durations: resolveDurations(o.durations),
    waitForConnect: o.waitForConnect ?? true,
    connectTimeoutMs,
    reconnectMinMs,
    reconnectMaxMs,
    mqttKeepaliveSec: keepalive,
  });
}
