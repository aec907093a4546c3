/**
 * The rollout controller: releases each job's executions into the execution queue within its
 * limits (maxConcurrent, perMinute, canary wave, schedule), applies the abort rule, and re-releases
 * retries once their backoff is over. It runs in every worker-role process; a per-job lease lets one
 * process release at a time, and the Lua release step re-checks every hard limit atomically.
 *
 * It wakes up when a job is created or an execution finishes or is re-queued (a message on the
 * rollout channel, published by the launcher and by the execution update script), when a job's own
 * timer fires (rate window, backoff, maintenance window), and on a periodic sweep that also
 * re-enqueues releases a crashed process never put in the queue.
 */
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { formatExecutionId } from '../protocol/index.js';
import type { ExecutionJobData } from '../queue/execution-queue.js';
import type { StatusPublisher } from '../status/status-publisher.js';
import type { Keys } from '../store/keys.js';
import type { ReplicaWatch } from '../store/replica-watch.js';
import type { Clock, ClockTimer } from './clock.js';
import { releaseQueueId } from './queue-ids.js';
import { decideRelease, type ReleaseDecision } from './release-decision.js';
import type { ReleasedItem, RolloutStore } from './rollout-store.js';

export interface RolloutControllerOptions {
  /** How long one process may hold a job's lease; a step takes milliseconds, so this is only a crash bound. */
  leaseMs: number;
  /** Every job is looked at this often even when no message arrives (lost pub/sub, crashed peers). */
  sweepIntervalMs: number;
  /** A release not in the queue after this long is re-enqueued by the sweep. */
  confirmGraceMs: number;
  /**
   * An aborted job whose executions still wait this long after the abort had its abort cut short (the
   * aborting process died between marking the job and canceling them): the controller cancels them.
   * Long enough for an abort in progress to finish its own (thousands of executions, a write each).
   */
  abortGraceMs: number;
  /**
   * Executions released (and put in the queue) per step at most. The release script and BullMQ's
   * `addBulk` each hold Redis for their whole batch, and the first of a batch reach the queue only
   * once all of it is through: a 10,000-device job released at once held Redis 212 ms in one script.
   * In steps of this size the first executions start at once, Redis answers everyone else in
   * between, and the releases still run far ahead of what workers take.
   */
  releaseStepMax: number;
}

export const DEFAULT_ROLLOUT_OPTIONS: Readonly<RolloutControllerOptions> = Object.freeze({
  leaseMs: 10_000,
  sweepIntervalMs: 5_000,
  confirmGraceMs: 10_000,
  abortGraceMs: 60_000,
  releaseStepMax: 250,
});

export interface RolloutControllerDeps {
  /** For the pub/sub subscription (a duplicate connection is made from it). */
  redis: Redis;
  keys: Keys;
  store: RolloutStore;
  queue: Queue<ExecutionJobData>;
  publisher: StatusPublisher | null;
  /** Aborts the job (the same path as an operator's abort) with `reason`. */
  abort: (jobId: string, reason: string) => Promise<unknown>;
  /** Cancels what an aborted job still has short of the point of no return (abort.ts `cancelRemaining`). */
  finishAbort: (jobId: string, reason: string) => Promise<{ canceled: number; inFlight: number }>;
  /** Moves the subscription after a failover behind one endpoint (replica-watch.ts). */
  replicas?: ReplicaWatch;
  clock: Clock;
  logger: Logger;
}

/**
 * Steps per tick at most: a release is followed by a fresh decision; this bounds a misbehaving loop.
 * A tick that ends here while still releasing gives up the lease and is followed by another at once.
 */
const MAX_STEPS_PER_TICK = 50;
/** What a step says about the next: stop (wait for a wake), decide again at once, or again after a release. */
type StepResult = 'stop' | 'again' | 'released';
/** When another process holds a job's lease, look again this soon. */
const LEASE_BUSY_RETRY_MS = 250;

interface Run {
  done: Promise<void>;
  again: boolean;
}

export class RolloutController {
  private readonly options: RolloutControllerOptions;
  private readonly token = randomBytes(8).toString('hex');
  private readonly runs = new Map<string, Run>();
  private readonly wakes = new Map<string, { at: number; timer: ClockTimer }>();
  private subscriber: Redis | null = null;
  private unfollow: (() => void) | null = null;
  private sweepTimer: ClockTimer | null = null;
  private sweeping: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly deps: RolloutControllerDeps,
    options: Partial<RolloutControllerOptions> = {},
  ) {
    this.options = { ...DEFAULT_ROLLOUT_OPTIONS, ...options };
    for (const [name, v] of Object.entries(this.options)) {
      if (!(Number.isFinite(v) && v > 0))
        throw new RangeError(`rollout option ${name} must be > 0, got ${v}`);
    }
  }

  /** Subscribes to the rollout channel and looks at every job that still needs it. */
  async start(): Promise<void> {
    const sub = this.deps.redis.duplicate();
    this.subscriber = sub;
    sub.on('error', (err: Error) => this.deps.logger.warn({ err: err.message }, 'rollout subscriber error'));
    sub.on('message', (_channel: string, jobId: string) => this.poke(jobId));
    this.unfollow = this.deps.replicas?.follow(sub) ?? null;
    await sub.subscribe(this.deps.keys.rolloutChannel());
    this.sweep();
  }

  /** Looks at a job soon: coalesced, so a burst of finished executions is one decision, not thousands. */
  poke(jobId: string): void {
    if (this.closed) return;
    const run = this.runs.get(jobId);
    if (run) {
      run.again = true;
      return;
    }
    const fresh: Run = { again: false, done: Promise.resolve() };
    this.runs.set(jobId, fresh);
    fresh.done = (async () => {
      try {
        let more = false;
        do {
          fresh.again = false;
          more = await this.tick(jobId);
        } while ((fresh.again || more) && !this.closed);
      } catch (err) {
        this.deps.logger.error({ err, jobId }, 'rollout step failed; the sweep tries again');
      } finally {
        this.runs.delete(jobId);
      }
    })();
  }

  /** Resolves once no job is being looked at (tests: "the controller has acted on what it knows"). */
  async settle(): Promise<void> {
    while (this.runs.size > 0 || this.sweeping) {
      await Promise.all([...this.runs.values()].map((r) => r.done));
      if (this.sweeping) await this.sweeping;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) this.deps.clock.clearTimeout(this.sweepTimer);
    for (const w of this.wakes.values()) this.deps.clock.clearTimeout(w.timer);
    this.wakes.clear();
    await this.settle();
    const sub = this.subscriber;
    this.subscriber = null;
    this.unfollow?.();
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }

  private sweep(): void {
    if (this.closed) return;
    this.sweeping = (async () => {
      try {
        const { store, clock } = this.deps;
        for (const jobId of await store.activeJobs()) {
          const stale = await store.unconfirmed(jobId, clock.now() - this.options.confirmGraceMs);
          if (stale.length) {
            this.deps.logger.warn(
              { jobId, releases: stale.length },
              're-enqueueing releases that never reached the queue',
            );
            await this.enqueue(jobId, stale);
          }
          this.poke(jobId);
        }
      } catch (err) {
        this.deps.logger.warn({ err }, 'rollout sweep failed');
      } finally {
        this.sweeping = null;
        if (!this.closed)
          this.sweepTimer = this.deps.clock.setTimeout(() => this.sweep(), this.options.sweepIntervalMs);
      }
    })();
  }

  /** One look at a job under its lease: decide, act, and decide again after a release. True: not done yet, look again. */
  private async tick(jobId: string): Promise<boolean> {
    const { store, clock } = this.deps;
    if (!(await store.acquireLease(jobId, this.token, this.options.leaseMs))) {
      // Another process is deciding for this job right now, maybe on a snapshot older than what woke us: look again shortly.
      this.wakeBy(jobId, clock.now() + LEASE_BUSY_RETRY_MS);
      return false;
    }
    try {
      let last: StepResult = 'stop';
      for (let i = 0; i < MAX_STEPS_PER_TICK && !this.closed; i++) {
        last = await this.step(jobId);
        if (last === 'stop') return false;
      }
      // Still releasing (a large job, in steps of releaseStepMax): look again at once. Each release
      // moves the job's cursor, so this ends; any other step repeated this often waits for a wake.
      return last === 'released';
    } finally {
      await store.releaseLease(jobId, this.token);
    }
  }

  /** Whether the next decision should follow at once ('released': after a release). */
  private async step(jobId: string): Promise<StepResult> {
    const { store, clock, logger } = this.deps;
    const now = clock.now();
    const read = await store.snapshot(jobId, now);
    if (!read) {
      await store.forget(jobId);
      return 'stop';
    }
    const { job, snapshot } = read;
    const decision: ReleaseDecision = decideRelease(job, snapshot);
    switch (decision.kind) {
      case 'finished': {
        this.clearWake(jobId);
        if (job.state === 'aborted' && job.counts.queued > 0) {
          // Executions still waiting after an abort: its process may have died before canceling them all.
          const due = Date.parse(job.abortedAt ?? job.updatedAt) + this.options.abortGraceMs;
          if (now < due) {
            this.setWake(jobId, due);
            return 'stop';
          }
          const reason = job.abortReason ?? 'aborted';
          const { canceled } = await this.deps.finishAbort(jobId, reason);
          logger.warn({ jobId, canceled, waiting: job.counts.queued }, 'finished an interrupted abort: canceled what still waited');
          if (canceled > 0) return 'again';
        }
        await store.forget(jobId);
        return 'stop';
      }
      case 'abort':
        logger.warn({ jobId, code: decision.code, reason: decision.reason }, 'rollout rule aborts the job');
        this.clearWake(jobId);
        // Aborted (or finished meanwhile): the next step sees it and forgets the job. Failed: the sweep tries again.
        return this.deps.abort(jobId, decision.reason).then(
          (): StepResult => 'again',
          (err: Error) => {
            logger.warn({ err, jobId }, 'rollout abort failed');
            return 'stop';
          },
        );
      case 'wait':
        if (decision.passCanary) {
          await store.setWave(jobId, 'rest');
          logger.info({ jobId }, 'canary wave passed');
        }
        this.setWake(jobId, decision.wakeAt);
        return 'stop';
      case 'release': {
        const res = await store.release(jobId, {
          now,
          perMinute: job.rollout.perMinute,
          maxConcurrent: job.rollout.maxConcurrent,
          orderLimit: decision.orderLimit,
          budget: Math.min(decision.budget, this.options.releaseStepMax),
          leaseToken: this.token,
          passCanary: decision.passCanary,
        });
        if (!res.ok) return res.reason === 'not-running' ? 'again' : 'stop';
        if (decision.passCanary) logger.info({ jobId }, 'canary wave passed');
        if (res.released.length) {
          await this.enqueue(jobId, res.released);
          logger.debug({ jobId, released: res.released.length, skipped: res.skipped }, 'executions released');
          const fresh = await store.snapshot(jobId, clock.now());
          if (fresh) this.deps.publisher?.job(fresh.job);
        }
        return res.released.length + res.skipped > 0 ? 'released' : 'stop';
      }
    }
  }

  /** Puts releases in the queue (the queue job id makes a repeat a no-op), then confirms them. */
  private async enqueue(jobId: string, items: readonly ReleasedItem[]): Promise<void> {
    const size = this.options.releaseStepMax;
    for (let i = 0; i < items.length; i += size) {
      const chunk = items.slice(i, i + size);
      await this.deps.queue.addBulk(
        chunk.map(({ deviceId, retries }) => {
          const executionId = formatExecutionId(jobId, deviceId);
          return {
            name: 'execution',
            data: { jobId, deviceId, executionId },
            opts: { jobId: releaseQueueId(executionId, retries) },
          };
        }),
      );
      await this.deps.store.confirm(jobId, chunk);
    }
  }

  private setWake(jobId: string, at: number | null): void {
    const cur = this.wakes.get(jobId);
    if (cur && cur.at === at) return;
    this.clearWake(jobId);
    if (at === null || this.closed) return;
    const timer = this.deps.clock.setTimeout(() => {
      this.wakes.delete(jobId);
      this.poke(jobId);
    }, at - this.deps.clock.now());
    this.wakes.set(jobId, { at, timer });
  }

  /** Makes sure the job is looked at by `at` (keeps an earlier wake-up). */
  private wakeBy(jobId: string, at: number): void {
    const cur = this.wakes.get(jobId);
    if (!cur || cur.at > at) this.setWake(jobId, at);
  }

  private clearWake(jobId: string): void {
    const cur = this.wakes.get(jobId);
    if (cur) this.deps.clock.clearTimeout(cur.timer);
    this.wakes.delete(jobId);
  }
}
