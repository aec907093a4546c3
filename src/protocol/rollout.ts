/**
 * How a job rolls out over its devices: which devices (target), how fast (limits and waves), when
 * (schedule), when to give up (abort rule), and how transient failures are retried. Shared by the
 * API, the workers and the portal; no Node APIs.
 */

/** A canary size: a number of devices, or a share of the job's eligible devices such as `"5%"`. */
export type CanarySize = number | `${number}%`;

/** A first (canary) wave; the rest starts only once the canary's success rate is reached. */
export interface RolloutWaves {
  canary: CanarySize;
  /** Share of the canary that must succeed, 0–100. Below it the job is aborted, not left waiting. */
  successThresholdPercent: number;
}

/** Limits on how executions are released to the workers. Absent limits do not limit. */
export interface RolloutLimits {
  /** Executions released and not yet finished, at most. */
  maxConcurrent?: number;
  /** Releases in any 60-second window, at most. */
  perMinute?: number;
  waves?: RolloutWaves;
}

/** Abort the job once `failureThresholdPercent` of at least `minExecuted` finished executions failed. */
export interface AbortRule {
  failureThresholdPercent: number;
  minExecuted: number;
}

/** A daily maintenance window, `HH:MM` to `HH:MM` (end exclusive; may wrap past midnight). */
export interface DailyWindow {
  start: string;
  end: string;
  /** IANA time zone; default `UTC`. */
  tz?: string;
}

/** When executions may be released: not before `startAt`, and only inside the daily window. */
export interface JobSchedule {
  startAt?: string;
  window?: DailyWindow;
}

/** Retries of transient failures before the point of no return (never after it). */
export interface RetryPolicy {
  /** Attempts in all, the first one included: 1 means no retry. */
  maxAttempts: number;
  /** Pause before the first retry; it doubles for each further one. */
  backoffMs: number;
}

/** Which devices a filter target selects: every given criterion must match (values within one are alternatives). */
export interface TargetFilter {
  /** Product ids; default: the products the image fits. */
  products?: number[];
  /** Installed versions (display strings, exact). */
  versions?: string[];
  /** Portal ids. */
  sites?: string[];
}

/**
 * How the job chose its devices; the resolved list is the job's executions. A long site list is cut
 * to its first MAX_RECORDED_SITES (with `sitesTotal`): the record travels with every status update.
 */
export type JobTarget =
  | { kind: 'devices'; count: number }
  | { kind: 'filter'; filter: TargetFilter & { sitesTotal?: number }; matched: number };

export const MAX_RECORDED_SITES = 20;

/** Live progress of the release of a job's executions to the workers. */
export interface ReleaseProgress {
  /** Executions that were not rejected at launch: the ones the rollout releases. */
  eligible: number;
  /** How many of them have been released at least once. */
  released: number;
  /** Released and not yet finished. */
  inFlight: number;
  /** Re-queues so far: retries after transient failures and waits for a busy site. */
  retries: number;
  /** `canary` while the first wave runs or is evaluated, `rest` after it passed; null without waves. */
  wave: 'canary' | 'rest' | null;
  canarySize: number;
  canaryFinished: number;
  canarySucceeded: number;
}

/** Launch-time rejection codes (the execution is `rejected` at once and never released). */
export const LAUNCH_REJECTION_CODES = ['incompatible', 'not-newer'] as const;
export type LaunchRejectionCode = (typeof LAUNCH_REJECTION_CODES)[number];

/** Defaults of a launch request's retry policy. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 3,
  backoffMs: 10_000,
});

/** The longest pause between two attempts, whatever the doubling says. */
export const MAX_RETRY_BACKOFF_MS = 3600_000;

/** Pause before retry number `retries + 1`: backoffMs × 2^retries, capped. */
export function retryDelayMs(policy: RetryPolicy, retries: number): number {
  return Math.min(MAX_RETRY_BACKOFF_MS, policy.backoffMs * 2 ** Math.max(0, retries));
}

/** Devices in the canary wave for `eligible` executions; 0 when the waves cover everything anyway. */
export function canarySizeOf(canary: CanarySize, eligible: number): number {
  const n =
    typeof canary === 'number'
      ? Math.floor(canary)
      : Math.ceil((eligible * Number(canary.slice(0, -1))) / 100);
  const size = Math.max(1, Math.min(eligible, n));
  return size >= eligible ? 0 : size;
}
