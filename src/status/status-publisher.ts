/**
 * Publishes job and fleet state to the browser-side topics (`fleetflash/…`).
 * Device records and log lines go out at once; the job summary is coalesced per job (at most one
 * publish per `summaryIntervalMs`) because at fleet scale it changes thousands of times per second.
 * Every summary carries its seq, so a reader keeps the newest one it sees; within one process a
 * record is never published after a newer one of the same topic.
 *
 * QoS: an execution record that is not terminal is the live view of an update, replaced by the next
 * one within seconds (a 5 % step or the next phase) and always, in the end, by the terminal record. It
 * goes at QoS 0: no PUBACK for the broker to write and the worker to read, no packet held until then,
 * routed as soon as the broker parses it. Everything else goes at QoS 1 and is what {@link flush} and
 * {@link acknowledged} wait for: terminal records (a worker completes an execution's queue job only
 * once its end is acknowledged), log lines (the portal repairs a gap only when a later line shows
 * it), job summaries, fleet device records, clears. The last record of an execution is the QoS 1
 * one, so a QoS 0 record is never routed after a newer one of its topic (a QoS 1 publish is routed
 * once its PUBACK is written, later than a QoS 0 one read with it). What QoS 0 gives up: the records
 * in the socket when the worker's connection to the broker breaks are lost, and the view shows the
 * one before until the execution's next record (a broker that restarts gets every record back from
 * the retained restorer). While the connection is known to be down, live records go at QoS 1 too:
 * mqtt.js would send the QoS 0 ones it queued only after replaying the stored QoS 1 ones, a terminal
 * record among them.
 */
import type { Logger } from 'pino';
import {
  fleetDeviceTopic,
  isTerminalExecutionState,
  jobDeviceTopic,
  jobEventsTopic,
  jobStatusTopic,
  type DeviceRecord,
  type ExecutionRecord,
  type JobEvent,
  type JobRecord,
} from '../protocol/index.js';
import { onAbort } from '../abort-listeners.js';
import type { UpdateResult } from '../store/job-store.js';
import type { StatusSink } from './status-sink.js';

const MAX_TRACKED_TOPICS = 500_000;

/** What a successful `JobStore.update` returns, which {@link StatusPublisher.stored} publishes. */
type StoredWrite = Extract<UpdateResult, { ok: true }>;

/** Which browser-side topic a publish went to (for latency metrics). */
export type StatusTopicKind = 'job' | 'execution' | 'event' | 'device';

/** Told how long the broker took to acknowledge each QoS 1 status publish (PUBACK, or routing when published in-process). */
export type PublishLatencyObserver = (kind: StatusTopicKind, seconds: number) => void;

export class StatusPublisher {
  private readonly pendingJobs = new Map<string, JobRecord>();
  private timer: NodeJS.Timeout | null = null;
  /** Ids of publishes not yet acknowledged (or failed). */
  private readonly inflight = new Set<number>();
  private nextId = 0;
  /** No publish with a lower id is outstanding (ids only grow, so this only moves forward). */
  private oldestPending = 0;
  /** The newest publish that failed (-1: none). */
  private lastFailedId = -1;
  /** Who waits for every publish up to `upTo` to settle ({@link acknowledged}), oldest first. */
  private waiters: AckWaiter[] = [];
  /** Highest seq published per job/execution topic, so a late (stale) record is never sent after a newer one. */
  private readonly published = new Map<string, number>();

  constructor(
    private readonly sink: StatusSink,
    private readonly logger: Logger,
    private readonly summaryIntervalMs = 100,
    private readonly onAcked?: PublishLatencyObserver,
    /** Where retained records go instead of `sink` (the embedded broker in this process: status-sink.ts). */
    private readonly retainedSink: StatusSink = sink,
  ) {}

  /** Queues the job summary; terminal job states are published at once. */
  job(job: JobRecord): void {
    const pending = this.pendingJobs.get(job.id);
    if (pending && pending.seq > job.seq) return;
    if (!this.fresh(jobStatusTopic(job.id), job.seq)) return;
    if (job.state === 'completed' || job.state === 'aborted') {
      this.pendingJobs.delete(job.id);
      this.publish(jobStatusTopic(job.id), job, true, 'job');
      return;
    }
    this.pendingJobs.set(job.id, job);
    this.timer ??= setTimeout(() => this.flushJobs(), this.summaryIntervalMs);
  }

  /** Publishes an execution record; `json` is the record already serialized (as the job store stored it). */
  execution(record: ExecutionRecord, json?: string): void {
    const topic = jobDeviceTopic(record.jobId, record.deviceId);
    if (!this.fresh(topic, record.seq)) return;
    this.send(topic, json ?? JSON.stringify(record), true, 'execution', isTerminalExecutionState(record.state) ? 1 : 0);
  }

  /**
   * Publishes what one stored execution write changed (`JobStore.update`): the record, then the job
   * summary, the log line and the device's fleet record when the write changed them.
   */
  stored(record: ExecutionRecord, written: StoredWrite): void {
    this.execution(record, written.recordJson);
    if (written.job) this.job(written.job);
    if (written.event) this.event(written.event);
    if (written.device) this.device(written.device);
  }

  event(event: JobEvent): void {
    this.publish(jobEventsTopic(event.jobId), event, false, 'event');
  }

  device(record: DeviceRecord): void {
    this.publish(fleetDeviceTopic(record.deviceId), record, true, 'device');
  }

  /**
   * Removes a retained record from the broker: an empty retained publish ([MQTT-3.3.1-10]).
   * Subscribers get the empty message live; later ones get nothing for the topic.
   */
  clear(topic: string, kind: StatusTopicKind): void {
    this.published.delete(topic);
    this.send(topic, '', true, kind, 1);
  }

  /**
   * Forgets which records were published, so the next of each topic goes out even with a seq sent
   * before: for a broker that lost its retained state (retained-restorer.ts). A record older than one
   * published after this is still held back.
   */
  forget(): void {
    this.published.clear();
  }

  /** Publishes what is queued and waits until the broker has acknowledged every QoS 1 publish sent so far. */
  async flush(): Promise<void> {
    this.flushJobs();
    await this.acknowledged();
  }

  /** Publishes sent and not yet acknowledged (or failed). */
  get unacknowledged(): number {
    return this.inflight.size;
  }

  /** A mark for {@link acknowledged}: publishes from here on. */
  mark(): number {
    return this.nextId;
  }

  /**
   * Waits until every QoS 1 publish sent so far has been acknowledged by the broker (PUBACK, or
   * routed when in-process) or has failed. Live records (QoS 0) are not waited for: the broker has
   * routed one before it acknowledges anything published after it on the same connection. Job
   * summaries still queued for their interval are not waited for either. True when none of those
   * sent since `since` (a {@link mark}) failed; false when one did, or when `signal` aborts the wait
   * first.
   */
  acknowledged(since = 0, signal?: AbortSignal): Promise<boolean> {
    if (this.inflight.size === 0) return Promise.resolve(this.lastFailedId < since);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const forget = onAbort(signal, () => resolve(false));
      this.waiters.push({
        upTo: this.nextId - 1,
        release: () => {
          forget();
          resolve(this.lastFailedId < since);
        },
      });
    });
  }

  /** Records `seq` for `topic` unless an equal or newer one was published already. */
  private fresh(topic: string, seq: number): boolean {
    const last = this.published.get(topic);
    if (last !== undefined && last >= seq) return false;
    // Bounded memory: forgetting only risks a redundant publish, which readers ignore by seq.
    if (this.published.size >= MAX_TRACKED_TOPICS) this.published.clear();
    this.published.set(topic, seq);
    return true;
  }

  private flushJobs(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const job of this.pendingJobs.values()) this.publish(jobStatusTopic(job.id), job, true, 'job');
    this.pendingJobs.clear();
  }

  private publish(topic: string, body: unknown, retain: boolean, kind: StatusTopicKind): void {
    this.send(topic, JSON.stringify(body), retain, kind, 1);
  }

  // A callback, not publishAsync: ~20 publishes per execution, and the promise chain per publish
  // (then, catch, finally) was garbage the worker's GC paid for.
  private send(topic: string, payload: string, retain: boolean, kind: StatusTopicKind, qos: 0 | 1): void {
    const sink = retain ? this.retainedSink : this.sink;
    // Offline, a QoS 0 publish would be queued behind the stored QoS 1 ones (status-sink.ts): QoS 1 then.
    if (qos === 0 && sink.connected !== false) {
      // Not waited for by flush() or acknowledged(): nothing acknowledges it. Its callback reports a
      // failure only.
      const failed = (err?: Error) => {
        if (err) this.logger.warn({ err, topic }, 'status publish failed');
      };
      try {
        sink.publish(topic, payload, { qos, retain }, failed);
      } catch (err) {
        failed(err as Error);
      }
      return;
    }
    const started = this.onAcked ? process.hrtime.bigint() : 0n;
    const id = this.nextId++;
    this.inflight.add(id);
    const done = (err?: Error) => {
      try {
        if (err) {
          this.logger.warn({ err, topic }, 'status publish failed');
          this.lastFailedId = Math.max(this.lastFailedId, id);
        } else this.onAcked?.(kind, Number(process.hrtime.bigint() - started) / 1e9);
      } finally {
        this.settled(id);
      }
    };
    try {
      sink.publish(topic, payload, { qos: 1, retain }, done);
    } catch (err) {
      // mqtt.js throws instead of calling back when the client has been ended.
      done(err as Error);
    }
  }

  private settled(id: number): void {
    this.inflight.delete(id);
    while (this.oldestPending < this.nextId && !this.inflight.has(this.oldestPending)) this.oldestPending++;
    // Waiters are in the order of their `upTo`: release those with nothing older outstanding.
    let released = 0;
    while (released < this.waiters.length && this.waiters[released].upTo < this.oldestPending) this.waiters[released++].release();
    if (released > 0) this.waiters = this.waiters.slice(released);
  }
}

interface AckWaiter {
  /** Released once no publish up to this id is outstanding. */
  upTo: number;
  release: () => void;
}
