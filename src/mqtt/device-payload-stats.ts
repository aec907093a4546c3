/**
 * Counters (and rate-limited log lines) for MQTT payloads from devices that the service did not
 * use: too large, not JSON, the wrong shape or out of range, over a per-site limit, or out of order.
 * The device link (workers) and the fleet monitor (api) share one instance per process; a metrics
 * exporter reads {@link DevicePayloadStats.snapshot}.
 *
 * Every drop is counted, but log lines are limited per source and reason: a site (or someone holding
 * its secret) that sends garbage in a loop must not be able to flood the logs, or stall a worker on
 * writing them.
 */
import type { Logger } from 'pino';

/** Who saw the payload. */
export const PAYLOAD_SOURCES = ['device-link', 'fleet-monitor'] as const;
export type PayloadSource = (typeof PAYLOAD_SOURCES)[number];

/**
 * Why it was not used:
 * - `oversize`: larger than the protocol's payload limit; not even parsed;
 * - `malformed`: not JSON, or not the `{"value": …}` / RPC envelope;
 * - `invalid`: the right envelope with values of the wrong type or out of range;
 * - `over-limit`: more products on one site than any GX has;
 * - `out-of-order`: progress older than progress already reported for the same execution (counted;
 *   the state machine, which alone knows the execution's state, ignores it).
 */
export const PAYLOAD_DROP_REASONS = [
  'oversize',
  'malformed',
  'invalid',
  'over-limit',
  'out-of-order',
] as const;
export type PayloadDropReason = (typeof PAYLOAD_DROP_REASONS)[number];

/** A copy of the counters at one moment. */
export interface DevicePayloadStatsSnapshot {
  dropped: Record<PayloadSource, Record<PayloadDropReason, number>>;
  /** Log lines left out by the rate limit (their drops are counted above all the same). */
  suppressedLogLines: number;
}

/** Log lines per source and reason per window; the rest are only counted. */
export const LOG_LINES_PER_WINDOW = 20;
export const LOG_WINDOW_MS = 60_000;

function zeros(): Record<PayloadDropReason, number> {
  return Object.fromEntries(PAYLOAD_DROP_REASONS.map((r) => [r, 0])) as Record<PayloadDropReason, number>;
}

/** Counters of one process. */
export class DevicePayloadStats {
  readonly #dropped = Object.fromEntries(PAYLOAD_SOURCES.map((s) => [s, zeros()])) as Record<
    PayloadSource,
    Record<PayloadDropReason, number>
  >;
  readonly #windows = new Map<string, { startedAt: number; lines: number }>();
  readonly #now: () => number;
  #suppressed = 0;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Counts one payload that was not used and logs it at warn, unless this kind was logged too often lately. */
  drop(
    source: PayloadSource,
    reason: PayloadDropReason,
    logger: Logger,
    fields: Record<string, unknown>,
    message: string,
  ): void {
    this.#dropped[source][reason]++;
    if (this.#mayLog(`${source}/${reason}`)) logger.warn({ ...fields, reason }, message);
    else this.#suppressed++;
  }

  snapshot(): DevicePayloadStatsSnapshot {
    return { dropped: structuredClone(this.#dropped), suppressedLogLines: this.#suppressed };
  }

  #mayLog(key: string): boolean {
    const now = this.#now();
    let w = this.#windows.get(key);
    if (!w || now - w.startedAt >= LOG_WINDOW_MS) {
      w = { startedAt: now, lines: 0 };
      this.#windows.set(key, w);
    }
    return ++w.lines <= LOG_LINES_PER_WINDOW;
  }
}
