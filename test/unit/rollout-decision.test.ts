import { emptyCounts, type ExecutionCounts } from '../../src/protocol/index.js';
import {
  decideRelease,
  PACE_WINDOW_MS,
  RATE_WINDOW_MS,
  type RolloutPolicy,
  type RolloutSnapshot,
} from '../../src/rollout/release-decision.js';

const T0 = Date.parse('2026-03-02T10:00:00Z');

function snap(patch: Partial<RolloutSnapshot> = {}, counts: Partial<ExecutionCounts> = {}): RolloutSnapshot {
  return {
    now: T0,
    jobState: 'in_progress',
    eligible: 10,
    cursor: 0,
    inFlight: 0,
    recentReleases: 0,
    oldestRecentRelease: null,
    pacedReleases: 0,
    oldestPacedRelease: null,
    retriesDue: 0,
    nextRetryAt: null,
    counts: { ...emptyCounts(), queued: 10, ...counts },
    launchRejected: 0,
    wave: null,
    canarySize: 0,
    canaryFinished: 0,
    canarySucceeded: 0,
    ...patch,
  };
}

function policy(patch: Partial<RolloutPolicy> = {}): RolloutPolicy {
  return { rollout: {}, abort: null, schedule: null, ...patch };
}

const canary = (threshold: number) =>
  policy({ rollout: { waves: { canary: 3, successThresholdPercent: threshold } } });
const rule = policy({ abort: { failureThresholdPercent: 50, minExecuted: 4 } });

describe('rollout release decision', () => {
  // [name, policy, snapshot, expected decision (partial)]
  const table: [string, RolloutPolicy, RolloutSnapshot, Record<string, unknown>][] = [
    ['a completed job is finished', policy(), snap({ jobState: 'completed' }), { kind: 'finished' }],
    ['an aborted job is finished', policy(), snap({ jobState: 'aborted' }), { kind: 'finished' }],
    ['no limits: everything at once', policy(), snap(), { kind: 'release', budget: 10, orderLimit: 10 }],
    [
      'a queued job (nothing started yet) releases too',
      policy(),
      snap({ jobState: 'queued' }),
      { kind: 'release', budget: 10 },
    ],
    [
      'maxConcurrent: fills the free slots',
      policy({ rollout: { maxConcurrent: 3 } }),
      snap({ cursor: 1, inFlight: 1 }),
      { kind: 'release', budget: 2 },
    ],
    [
      'maxConcurrent full: waits for an execution to finish',
      policy({ rollout: { maxConcurrent: 3 } }),
      snap({ cursor: 3, inFlight: 3 }),
      { kind: 'wait', why: 'concurrency', wakeAt: null },
    ],
    [
      'maxConcurrent over (limit lowered): waits',
      policy({ rollout: { maxConcurrent: 2 } }),
      snap({ cursor: 3, inFlight: 3 }),
      { kind: 'wait', why: 'concurrency' },
    ],
    [
      'perMinute: the room left in the last minute',
      policy({ rollout: { perMinute: 600 } }),
      snap({ eligible: 1000, cursor: 595, recentReleases: 595, oldestRecentRelease: T0 - 50_000 }),
      { kind: 'release', budget: 5 },
    ],
    [
      'perMinute is paced: at most ceil(perMinute/60) in any second',
      policy({ rollout: { perMinute: 600 } }),
      snap({ eligible: 100 }),
      { kind: 'release', budget: 10 },
    ],
    [
      'pacing spent: wakes a second after the oldest of the last second',
      policy({ rollout: { perMinute: 600 } }),
      snap({
        eligible: 100,
        cursor: 10,
        recentReleases: 10,
        oldestRecentRelease: T0 - 400,
        pacedReleases: 10,
        oldestPacedRelease: T0 - 400,
      }),
      { kind: 'wait', why: 'rate', wakeAt: T0 - 400 + PACE_WINDOW_MS },
    ],
    [
      'a perMinute below 60 still releases one per second',
      policy({ rollout: { perMinute: 5 } }),
      snap({ cursor: 3, recentReleases: 3, oldestRecentRelease: T0 - 10_000 }),
      { kind: 'release', budget: 1 },
    ],
    [
      'pacing and a full concurrency: waits for an execution to finish',
      policy({ rollout: { perMinute: 600, maxConcurrent: 2 } }),
      snap({ eligible: 100, cursor: 10, inFlight: 2, pacedReleases: 10, oldestPacedRelease: T0 }),
      { kind: 'wait', why: 'concurrency', wakeAt: null },
    ],
    [
      'perMinute spent: wakes when the oldest release leaves the window',
      policy({ rollout: { perMinute: 5 } }),
      snap({ cursor: 5, recentReleases: 5, oldestRecentRelease: T0 - 10_000 }),
      { kind: 'wait', why: 'rate', wakeAt: T0 - 10_000 + RATE_WINDOW_MS },
    ],
    [
      'both limits: the tighter wins',
      policy({ rollout: { perMinute: 300, maxConcurrent: 4 } }),
      snap({ cursor: 2, inFlight: 1, recentReleases: 2, oldestRecentRelease: T0 }),
      { kind: 'release', budget: 3 },
    ],
    [
      'both spent: the rate wake-up still comes',
      policy({ rollout: { perMinute: 2, maxConcurrent: 2 } }),
      snap({ cursor: 2, inFlight: 2, recentReleases: 2, oldestRecentRelease: T0 - 1000 }),
      { kind: 'wait', why: 'rate', wakeAt: T0 - 1000 + RATE_WINDOW_MS },
    ],
    [
      'due retries count as releasable after the order is exhausted',
      policy({ rollout: { maxConcurrent: 5 } }),
      snap({ cursor: 10, inFlight: 2, retriesDue: 2 }),
      { kind: 'release', budget: 2 },
    ],
    [
      'retries in backoff: wakes when the next is due',
      policy(),
      snap({ cursor: 10, inFlight: 0, nextRetryAt: T0 + 30_000 }),
      { kind: 'wait', why: 'backoff', wakeAt: T0 + 30_000 },
    ],
    [
      'everything released: waits for the in-flight ones',
      policy(),
      snap({ cursor: 10, inFlight: 4 }),
      { kind: 'wait', why: 'drained', wakeAt: null },
    ],
    [
      'canary: releases only the first wave',
      canary(100),
      snap({ wave: 'canary', canarySize: 3 }),
      { kind: 'release', budget: 3, orderLimit: 3, passCanary: false },
    ],
    [
      'canary: limits still apply inside it',
      policy({ rollout: { maxConcurrent: 2, waves: { canary: 3, successThresholdPercent: 100 } } }),
      snap({ wave: 'canary', canarySize: 3 }),
      { kind: 'release', budget: 2, orderLimit: 3 },
    ],
    [
      'canary running: the rest waits',
      canary(100),
      snap({ wave: 'canary', canarySize: 3, cursor: 3, inFlight: 2, canaryFinished: 1, canarySucceeded: 1 }),
      { kind: 'wait', why: 'canary', wakeAt: null },
    ],
    [
      'canary passed: the rest follows',
      canary(100),
      snap({ wave: 'canary', canarySize: 3, cursor: 3, canaryFinished: 3, canarySucceeded: 3 }),
      { kind: 'release', budget: 7, orderLimit: 10, passCanary: true },
    ],
    [
      'canary exactly at its threshold passes',
      canary(66),
      snap({ wave: 'canary', canarySize: 3, cursor: 3, canaryFinished: 3, canarySucceeded: 2 }),
      { kind: 'release', passCanary: true },
    ],
    [
      'canary below its threshold aborts the job',
      canary(67),
      snap({ wave: 'canary', canarySize: 3, cursor: 3, canaryFinished: 3, canarySucceeded: 2 }),
      { kind: 'abort', code: 'canary-failed' },
    ],
    [
      'after the canary the wave no longer gates',
      canary(100),
      snap({ wave: 'rest', canarySize: 3, cursor: 5, canaryFinished: 3, canarySucceeded: 3 }),
      { kind: 'release', budget: 5, orderLimit: 10, passCanary: false },
    ],
    [
      'abort rule: not before minExecuted',
      rule,
      snap({ cursor: 3 }, { succeeded: 1, failed: 2 }),
      { kind: 'release' },
    ],
    [
      'abort rule: at the threshold after minExecuted',
      rule,
      snap({ cursor: 4 }, { succeeded: 2, failed: 1, timed_out: 1 }),
      { kind: 'abort', code: 'failure-threshold' },
    ],
    [
      'abort rule: just below the threshold continues',
      policy({ abort: { failureThresholdPercent: 50, minExecuted: 5 } }),
      snap({ cursor: 5 }, { succeeded: 3, failed: 2 }),
      { kind: 'release' },
    ],
    [
      'abort rule: rejections at launch are not executions',
      rule,
      snap({ cursor: 2, launchRejected: 3 }, { succeeded: 1, rejected: 4 }),
      { kind: 'release' },
    ],
    [
      'abort rule: a rejection by the device is a failure',
      rule,
      snap({ cursor: 4, launchRejected: 1 }, { succeeded: 2, rejected: 3 }),
      { kind: 'abort', code: 'failure-threshold' },
    ],
    [
      'abort rule: canceled executions are not failures',
      rule,
      snap({ cursor: 6 }, { succeeded: 3, failed: 1, canceled: 2 }),
      { kind: 'release' },
    ],
    [
      'abort rule before the canary verdict',
      policy({ ...canary(0), abort: { failureThresholdPercent: 50, minExecuted: 2 } }),
      snap({ wave: 'canary', canarySize: 3, cursor: 3, canaryFinished: 2 }, { failed: 2 }),
      { kind: 'abort', code: 'failure-threshold' },
    ],
    [
      'start time ahead: waits for it',
      policy({ schedule: { startAt: new Date(T0 + 3600_000).toISOString() } }),
      snap(),
      { kind: 'wait', why: 'schedule', wakeAt: T0 + 3600_000 },
    ],
    [
      'start time passed: releases',
      policy({ schedule: { startAt: new Date(T0 - 1).toISOString() } }),
      snap(),
      { kind: 'release' },
    ],
    [
      'outside the window: waits for it to open',
      policy({ schedule: { window: { start: '22:00', end: '04:00' } } }),
      snap(),
      { kind: 'wait', why: 'schedule', wakeAt: Date.parse('2026-03-02T22:00:00Z') },
    ],
    [
      'inside the window: releases',
      policy({ schedule: { window: { start: '09:30', end: '10:30' } } }),
      snap(),
      { kind: 'release' },
    ],
    [
      'start time and window: the first opening after the start',
      policy({ schedule: { startAt: '2026-03-03T05:00:00Z', window: { start: '02:00', end: '04:00' } } }),
      snap(),
      { kind: 'wait', why: 'schedule', wakeAt: Date.parse('2026-03-04T02:00:00Z') },
    ],
    [
      'the abort rule applies outside the window too',
      policy({ ...rule, schedule: { window: { start: '22:00', end: '04:00' } } }),
      snap({ cursor: 4 }, { failed: 4 }),
      { kind: 'abort' },
    ],
    [
      'a canary verdict outside the window is recorded while waiting',
      policy({ ...canary(100), schedule: { window: { start: '22:00', end: '04:00' } } }),
      snap({ wave: 'canary', canarySize: 3, cursor: 3, canaryFinished: 3, canarySucceeded: 3 }),
      { kind: 'wait', why: 'schedule', passCanary: true },
    ],
  ];

  test.each(table)('%s', (_name, p, s, expected) => {
    expect(decideRelease(p, s)).toMatchObject(expected);
  });

  test('the abort reason states the counts', () => {
    const d = decideRelease(rule, snap({ cursor: 4 }, { succeeded: 2, failed: 2 }));
    expect(d).toEqual({
      kind: 'abort',
      code: 'failure-threshold',
      reason: expect.stringContaining('2 of 4 executed failed (50% ≥ 50%)'),
    });
  });

  test('a release never exceeds what is left, whatever the limits', () => {
    for (let cursor = 0; cursor <= 10; cursor++) {
      for (let inFlight = 0; inFlight <= 4; inFlight++) {
        const recent = cursor % 7;
        const d = decideRelease(
          policy({ rollout: { maxConcurrent: 4, perMinute: 150 } }),
          snap({ cursor, inFlight, recentReleases: 145 + recent, pacedReleases: recent % 3 }),
        );
        if (d.kind !== 'release') continue;
        expect(d.budget).toBeLessThanOrEqual(10 - cursor);
        expect(d.budget + inFlight).toBeLessThanOrEqual(4);
        expect(d.budget + 145 + recent).toBeLessThanOrEqual(150);
        expect(d.budget + (recent % 3)).toBeLessThanOrEqual(3);
        expect(d.budget).toBeGreaterThan(0);
      }
    }
  });
});
