/**
 * Restores the retained browser-side topics from Redis: after a restart of an in-memory broker the
 * retained job and fleet state is gone, and a page loading then would see nothing. Checked on every
 * (re)connect of the api role's service client: a retained marker tells whether the broker still
 * holds our state; only when it is missing is everything republished (and the marker set again).
 *
 * A broker that kept its state (an external one, or `BROKER_CLUSTER=redis`) may still hold records
 * older than Redis: an api process that died between storing a change (a launch, an abort's
 * cancels, a rollout decision) and publishing it left them behind, and an MQTT reader would follow
 * the stale record until the next change. So the first check of every process that finds the marker
 * republishes the jobs that can still change or just did (unfinished, or finished in the last
 * {@link RECENT_JOB_MS}), their executions and their devices.
 *
 * A restore pass races with workers publishing newer state. The second pass republishes whatever
 * changed during the first, so the last retained message of every topic is the newest record
 * (readers keep the highest seq, so an older record arriving in between changes nothing).
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { DeviceRecord, ExecutionRecord, JobRecord } from '../protocol/index.js';
import type { DeviceStore } from '../store/device-store.js';
import type { JobStore } from '../store/job-store.js';
import type { StatusPublisher } from './status-publisher.js';

/** Jobs restored per pass (newest first); older ones are history, served by the API. */
export const RESTORE_JOBS_LIMIT = 200;
/** Jobs finished longer ago than this are left out of the start-up pass (the marker present). */
export const RECENT_JOB_MS = 15 * 60_000;
/** Pause before the second pass. */
export const RESTORE_SETTLE_MS = 1000;
/** Retained marker: present while the broker still holds the state we published. Service-only topic. */
export const RETAINED_MARKER_TOPIC = 'fleetflash/system/retained-marker';
/** How long to wait for the retained marker after subscribing. */
const MARKER_WAIT_MS = 500;

/** Everything (the broker lost its state), or the jobs that may have changed unpublished. */
type Scope = 'all' | 'recent';

interface Snapshot {
  jobs: Map<string, JobRecord>;
  executions: Map<string, ExecutionRecord>;
  devices: Map<string, DeviceRecord>;
}

export class RetainedRestorer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  /** A check of this process has completed (with the start-up pass or a full restore): no start-up pass again. */
  private checkedOnce = false;

  /**
   * `activeJobIds`: the jobs the rollout still looks after, however old. `retainedJobTtlMs`: jobs
   * finished longer ago than this are not put back (retained-expiry.ts cleared them); 0: no limit.
   */
  constructor(
    private readonly jobs: JobStore,
    private readonly devices: DeviceStore,
    private readonly publisher: StatusPublisher,
    private readonly logger: Logger,
    private readonly activeJobIds: () => Promise<string[]>,
    private readonly retainedJobTtlMs = 0,
  ) {}

  /** Restores when the broker has lost the retained marker (coalesced while one runs). */
  restoreIfLost(mqtt: MqttClient): Promise<void> {
    this.running ??= this.checkAndRun(mqtt).finally(() => (this.running = null));
    return this.running;
  }

  private async checkAndRun(mqtt: MqttClient): Promise<void> {
    if (await this.markerPresent(mqtt)) {
      if (!this.checkedOnce) await this.run('recent');
      this.checkedOnce = true;
      return;
    }
    this.logger.info('broker holds no retained fleetflash state; restoring it from Redis');
    // What this process published before the broker lost it must go out again, same seq or not.
    this.publisher.forget();
    await this.run('all');
    await mqtt.publishAsync(RETAINED_MARKER_TOPIC, JSON.stringify({ restoredAt: new Date().toISOString() }), { qos: 1, retain: true });
    this.checkedOnce = true;
  }

  private async markerPresent(mqtt: MqttClient): Promise<boolean> {
    let seen = false;
    const onMessage = (topic: string, payload: Buffer) => {
      if (topic === RETAINED_MARKER_TOPIC && payload.length > 0) seen = true;
    };
    mqtt.on('message', onMessage);
    try {
      await mqtt.subscribeAsync(RETAINED_MARKER_TOPIC, { qos: 1 });
      // Retained messages follow the SUBACK; give them a moment.
      await new Promise<void>((resolve) => {
        this.timer = setTimeout(resolve, MARKER_WAIT_MS);
        this.timer.unref();
      });
      await mqtt.unsubscribeAsync(RETAINED_MARKER_TOPIC);
    } finally {
      mqtt.off('message', onMessage);
    }
    return seen;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  private async run(scope: Scope): Promise<void> {
    const started = Date.now();
    const first = await this.snapshot(scope);
    this.publish(first, null);
    await new Promise<void>((resolve) => {
      this.timer = setTimeout(resolve, RESTORE_SETTLE_MS);
      this.timer.unref();
    });
    const second = await this.snapshot(scope);
    const changed = this.publish(second, first);
    await this.publisher.flush();
    this.logger.info(
      { scope, jobs: first.jobs.size, executions: first.executions.size, devices: first.devices.size, changed, ms: Date.now() - started },
      scope === 'all' ? 'retained state restored' : 'recent job state republished',
    );
  }

  private async snapshot(scope: Scope): Promise<Snapshot> {
    const jobs = (scope === 'all' ? await this.jobs.list(RESTORE_JOBS_LIMIT) : await this.recentJobs()).filter((j) => !this.expired(j));
    const executions = new Map<string, ExecutionRecord>();
    for (const j of jobs) for (const e of await this.jobs.executions(j.id)) executions.set(e.executionId, e);
    const devices =
      scope === 'all'
        ? await this.devices.list()
        : (await this.devices.getMany([...new Set([...executions.values()].map((e) => e.deviceId))])).filter(
            (d): d is DeviceRecord => d !== null,
          );
    return { jobs: new Map(jobs.map((j) => [j.id, j])), executions, devices: new Map(devices.map((d) => [d.deviceId, d])) };
  }

  /** Finished so long ago that its retained records are cleared, not restored. */
  private expired(job: JobRecord): boolean {
    return this.retainedJobTtlMs > 0 && job.finishedAt !== null && Date.parse(job.finishedAt) <= Date.now() - this.retainedJobTtlMs;
  }

  /** Of the newest jobs those unfinished or finished lately, and every job the rollout still looks after. */
  private async recentJobs(): Promise<JobRecord[]> {
    const since = Date.now() - RECENT_JOB_MS;
    const jobs = (await this.jobs.list(RESTORE_JOBS_LIMIT)).filter((j) => !j.finishedAt || Date.parse(j.finishedAt) >= since);
    const listed = new Set(jobs.map((j) => j.id));
    for (const id of await this.activeJobIds()) {
      if (listed.has(id)) continue;
      const job = await this.jobs.get(id);
      if (job) jobs.push(job);
    }
    return jobs;
  }

  /** Publishes everything in `now`, or only what differs from `before`; returns how many. */
  private publish(now: Snapshot, before: Snapshot | null): number {
    let n = 0;
    for (const [id, j] of now.jobs) {
      if (before && before.jobs.get(id)?.seq === j.seq) continue;
      this.publisher.job(j);
      n++;
    }
    for (const [id, e] of now.executions) {
      if (before && before.executions.get(id)?.seq === e.seq) continue;
      this.publisher.execution(e);
      n++;
    }
    for (const [id, d] of now.devices) {
      if (before && JSON.stringify(before.devices.get(id)) === JSON.stringify(d)) continue;
      this.publisher.device(d);
      n++;
    }
    return n;
  }

}
