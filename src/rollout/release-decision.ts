/**
 * The rollout's decision, as a pure function of a snapshot of the job: abort it (failure threshold,
 * failed canary), release up to N executions, or wait (and until when). No I/O and no clock reads:
 * the controller reads the snapshot, calls this, and carries out the answer; the Lua release step
 * re-checks the hard limits atomically, so a stale snapshot can never over-release.
 */
import type { AbortRule, ExecutionCounts, JobSchedule, JobState, RolloutLimits } from '../protocol/index.js';
import { scheduleGate } from './schedule-window.js';

/**
 * perMinute counts releases over a minute plus a guard for the time from a release to the device
 * starting (queue, preflight, install request), so the devices too see at most perMinute starts in
 * any minute, not only the controller.
 */
export const RATE_GUARD_MS = 1000;
export const RATE_WINDOW_MS = 60_000 + RATE_GUARD_MS;
/**
 * Releases are paced as well: at most ceil(perMinute / 60) in any second. A minute's budget is spread
 * over the minute instead of going out in one burst, which spares the download server and lets the
 * abort rule see failures before the whole minute's devices have started.
 */
export const PACE_WINDOW_MS = 1000;

/** Releases allowed in any PACE_WINDOW_MS for a perMinute limit. */
export function perSecondCap(perMinute: number): number {
  return Math.max(1, Math.ceil(perMinute / 60));
}

/** What the controller knows about a job when it decides. */
export interface RolloutSnapshot {
  now: number;
  jobState: JobState;
  /** Executions in the release order (the ones not rejected at launch). */
  eligible: number;
  /** How many of the release order have been released (the cursor). */
  cursor: number;
  /** Released and not yet finished (or re-queued). */
  inFlight: number;
  /** Releases in the last RATE_WINDOW_MS, and when the oldest of them happened. */
  recentReleases: number;
  oldestRecentRelease: number | null;
  /** Releases in the last PACE_WINDOW_MS, and the oldest of them. */
  pacedReleases: number;
  oldestPacedRelease: number | null;
  /** Re-queued executions whose backoff is over; and the due time of the next one that is not. */
  retriesDue: number;
  nextRetryAt: number | null;
  counts: ExecutionCounts;
  /** Executions rejected at launch (not executed: they never count towards the abort rule). */
  launchRejected: number;
  wave: 'canary' | 'rest' | null;
  canarySize: number;
  canaryFinished: number;
  canarySucceeded: number;
}

/** The job's rollout settings the decision needs. */
export interface RolloutPolicy {
  rollout: RolloutLimits;
  abort: AbortRule | null;
  schedule: JobSchedule | null;
}

export type WaitReason = 'schedule' | 'canary' | 'concurrency' | 'rate' | 'backoff' | 'drained';

export type ReleaseDecision =
  /** The job is completed or aborted: nothing more to do. */
  | { kind: 'finished' }
  | { kind: 'abort'; code: 'failure-threshold' | 'canary-failed'; reason: string }
  /**
   * Release up to `budget` executions (due retries first), not moving the cursor past `orderLimit`.
   * `passCanary`: the canary reached its success rate; the rest of the job may follow.
   */
  | { kind: 'release'; budget: number; orderLimit: number; passCanary: boolean }
  /** Nothing to release now; decide again at `wakeAt` (null: when an execution finishes). */
  | { kind: 'wait'; why: WaitReason; wakeAt: number | null; passCanary: boolean };

/** Finished executions that count towards the abort rule, and how many of them failed. */
export function executedAndFailed(s: Pick<RolloutSnapshot, 'counts' | 'launchRejected'>): {
  executed: number;
  failures: number;
} {
  const c = s.counts;
  const executed = c.succeeded + c.failed + c.timed_out + Math.max(0, c.rejected - s.launchRejected);
  return { executed, failures: executed - c.succeeded };
}

export function decideRelease(policy: RolloutPolicy, s: RolloutSnapshot): ReleaseDecision {
  if (s.jobState === 'completed' || s.jobState === 'aborted') return { kind: 'finished' };

  const rule = policy.abort;
  if (rule) {
    const { executed, failures } = executedAndFailed(s);
    if (executed >= rule.minExecuted && failures * 100 >= rule.failureThresholdPercent * executed) {
      return {
        kind: 'abort',
        code: 'failure-threshold',
        reason: `aborted by the rollout rule: ${failures} of ${executed} executed failed (${pct(failures, executed)} ≥ ${rule.failureThresholdPercent}%)`,
      };
    }
  }

  let orderLimit = s.eligible;
  let passCanary = false;
  const waves = policy.rollout.waves;
  if (s.wave === 'canary' && waves) {
    if (s.canaryFinished >= s.canarySize) {
      if (s.canarySucceeded * 100 < waves.successThresholdPercent * s.canarySize) {
        return {
          kind: 'abort',
          code: 'canary-failed',
          reason: `aborted: the canary wave reached ${pct(s.canarySucceeded, s.canarySize)} success (${s.canarySucceeded} of ${s.canarySize}), below ${waves.successThresholdPercent}%`,
        };
      }
      passCanary = true;
    } else {
      orderLimit = Math.min(s.canarySize, s.eligible);
    }
  }

  const gate = scheduleGate(s.now, policy.schedule);
  if (!gate.open) return { kind: 'wait', why: 'schedule', wakeAt: gate.opensAt, passCanary };

  const releasable = Math.max(0, orderLimit - s.cursor) + s.retriesDue;
  if (releasable === 0) {
    const why: WaitReason =
      s.nextRetryAt !== null ? 'backoff' : orderLimit < s.eligible ? 'canary' : 'drained';
    return { kind: 'wait', why, wakeAt: s.nextRetryAt, passCanary };
  }

  let budget = releasable;
  const { maxConcurrent, perMinute } = policy.rollout;
  if (maxConcurrent !== undefined) budget = Math.min(budget, maxConcurrent - s.inFlight);
  const minuteRoom = perMinute === undefined ? Number.POSITIVE_INFINITY : perMinute - s.recentReleases;
  const secondRoom =
    perMinute === undefined ? Number.POSITIVE_INFINITY : perSecondCap(perMinute) - s.pacedReleases;
  budget = Math.min(budget, minuteRoom, secondRoom);
  if (budget <= 0) {
    if (minuteRoom <= 0) {
      const wakeAt = s.oldestRecentRelease === null ? s.now : s.oldestRecentRelease + RATE_WINDOW_MS;
      return { kind: 'wait', why: 'rate', wakeAt, passCanary };
    }
    if (secondRoom <= 0 && (maxConcurrent === undefined || s.inFlight < maxConcurrent)) {
      const wakeAt = s.oldestPacedRelease === null ? s.now : s.oldestPacedRelease + PACE_WINDOW_MS;
      return { kind: 'wait', why: 'rate', wakeAt, passCanary };
    }
    return { kind: 'wait', why: 'concurrency', wakeAt: null, passCanary };
  }
  return { kind: 'release', budget, orderLimit, passCanary };
}

function pct(n: number, of: number): string {
  return `${of === 0 ? 0 : Math.round((n * 1000) / of) / 10}%`;
}
