/**
 * Restores the retained browser-side topics from Redis: after a restart of an in-memory broker the
 * retained job and fleet state is gone, and a page loading then would see nothing. Checked on every
 * (re)connect of the api role's service client: a retained marker tells whether the broker still
 * holds our state; only when it is missing is everything republished (and the marker set again).
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
/** Pause before the second pass. */
export const RESTORE_SETTLE_MS = 1000;
/** Retained marker: present while the broker still holds the state we published. Service-only topic. */
export const RETAINED_MARKER_TOPIC = 'fleetflash/system/retained-marker';
/** How long to wait for the retained marker after subscribing. */
const MARKER_WAIT_MS = 500;

interface Snapshot {
  jobs: Map<string, JobRecord>;
  executions: Map<string, ExecutionRecord>;
  devices: Map<string, DeviceRecord>;
}

export class RetainedRestorer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly jobs: JobStore,
    private readonly devices: DeviceStore,
    private readonly publisher: StatusPublisher,
    private readonly logger: Logger,
  ) {}

  /** Restores when the broker has lost the retained marker (coalesced while one runs). */
  restoreIfLost(mqtt: MqttClient): Promise<void> {
    this.running ??= this.checkAndRun(mqtt).finally(() => (this.running = null));
    return this.running;
  }

  private async checkAndRun(mqtt: MqttClient): Promise<void> {
    if (await this.markerPresent(mqtt)) return;
    this.logger.info('broker holds no retained fleetflash state; restoring it from Redis');
    await this.run();
    await mqtt.publishAsync(RETAINED_MARKER_TOPIC, JSON.stringify({ restoredAt: new Date().toISOString() }), { qos: 1, retain: true });
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

  private async run(): Promise<void> {
    const started = Date.now();
    const first = await this.snapshot();
    this.publish(first, null);
    await new Promise<void>((resolve) => {
      this.timer = setTimeout(resolve, RESTORE_SETTLE_MS);
      this.timer.unref();
    });
    const second = await this.snapshot();
    const changed = this.publish(second, first);
    await this.publisher.flush();
    this.logger.info(
      { jobs: first.jobs.size, executions: first.executions.size, devices: first.devices.size, changed, ms: Date.now() - started },
      'retained state restored',
    );
  }

  private async snapshot(): Promise<Snapshot> {
    const jobs = await this.jobs.list(RESTORE_JOBS_LIMIT);
    const executions = new Map<string, ExecutionRecord>();
    for (const j of jobs) for (const e of await this.jobs.executions(j.id)) executions.set(e.executionId, e);
    const devices = new Map((await this.devices.list()).map((d) => [d.deviceId, d]));
    return { jobs: new Map(jobs.map((j) => [j.id, j])), executions, devices };
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
