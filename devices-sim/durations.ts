/**
 * How long things take on a real site, in real seconds and bytes per second, and the time scale
 * that compresses them. `timeScale: 1000` turns a 60 s reboot into 60 ms.
 */

export interface SimDurations {
  /** A keepalive keeps the site publishing for this long (dbus-flashmq: 60 s). */
  aliveSec: number;
  /** Interval of `N/<id>/heartbeat` while alive (dbus-flashmq: 3 s). */
  heartbeatSec: number;
  verifySec: number;
  gxInstallSec: number;
  vebusBackupSec: number;
  vebusFlashSec: number;
  vebusRestoreSec: number;
  vedirectInstallSec: number;
  gxRebootSec: number;
  productRebootSec: number;
  /** Download speed of a normal site. */
  linkBytesPerSec: number;
  /** Download speed under the `slowLink` fault. */
  slowLinkBytesPerSec: number;
  /** How long a `downloadStall` hangs before the device gives up: longer than any sane phase timeout. */
  stallSec: number;
  /** Back-off before the first download retry after a dropped connection; doubles per retry. */
  downloadRetrySec: number;
}

export const DEFAULT_DURATIONS: Readonly<SimDurations> = Object.freeze({
  aliveSec: 60,
  heartbeatSec: 3,
  verifySec: 2,
  gxInstallSec: 120,
  vebusBackupSec: 30,
  vebusFlashSec: 180,
  vebusRestoreSec: 30,
  vedirectInstallSec: 60,
  gxRebootSec: 60,
  productRebootSec: 15,
  linkBytesPerSec: 1_000_000,
  slowLinkBytesPerSec: 20_000,
  stallSec: 3600,
  downloadRetrySec: 2,
});

/**
 * Overrides that keep dbus-flashmq's protocol timers (the 60 s alive window, the 3 s heartbeat) at
 * their real wall-clock length under `timeScale`, while the device's work stays compressed. An
 * orchestrator refreshes its keepalive in real time (every 30 s), so with a compressed window a
 * supervised site would fall silent between two keepalives and its notifications (a product back
 * on the bus, a new version) would never arrive, which no real site does.
 */
export function realTimeProtocolTimers(timeScale: number): Pick<SimDurations, 'aliveSec' | 'heartbeatSec'> {
  return { aliveSec: DEFAULT_DURATIONS.aliveSec * timeScale, heartbeatSec: DEFAULT_DURATIONS.heartbeatSec * timeScale };
}

/**
 * Periodic timers never fire faster than this, whatever the scale: a 3 s heartbeat at scale 5000
 * would otherwise be a 0.6 ms busy loop per alive site.
 */
export const MIN_PERIOD_MS = 20;

/** Converts real durations and rates to simulated ones. */
export class TimeScale {
  constructor(readonly scale: number) {
    if (!(scale > 0) || !Number.isFinite(scale))
      throw new RangeError(`timeScale must be a positive number, got ${scale}`);
  }

  /** Milliseconds of wall-clock time for `seconds` of simulated time. */
  ms(seconds: number): number {
    return (seconds * 1000) / this.scale;
  }

  /** Like `ms`, but never below `MIN_PERIOD_MS`: for things that repeat. */
  periodMs(seconds: number): number {
    return Math.max(MIN_PERIOD_MS, this.ms(seconds));
  }

  /** Wall-clock bytes per second for a simulated link speed. */
  bytesPerSec(rate: number): number {
    return rate * this.scale;
  }
}

/** Merges overrides over the defaults and checks every value. */
export function resolveDurations(overrides: Partial<SimDurations> = {}): Readonly<SimDurations> {
  const merged = { ...DEFAULT_DURATIONS, ...overrides };
  for (const [key, value] of Object.entries(merged)) {
    if (!(key in DEFAULT_DURATIONS)) throw new RangeError(`unknown duration '${key}'`);
    if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
      throw new RangeError(`duration ${key} must be a finite number >= 0, got ${String(value)}`);
    }
  }
  for (const key of ['linkBytesPerSec', 'slowLinkBytesPerSec'] as const) {
    if (merged[key] <= 0) throw new RangeError(`${key} must be > 0`);
  }
  return Object.freeze(merged);
}
