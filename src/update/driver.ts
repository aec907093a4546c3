/**
 * Runs one execution: feeds device answers, timers and lock results into the pure state machine and
 * carries out the commands it returns against MQTT (DeviceLink), Redis (JobStore) and timers.
 * Events are handled one at a time, in arrival order.
 */
import type { Logger } from 'pino';
import {
  PHASES,
  formatLocalDevice,
  isDeviceStatus,
  isInstallAccepted,
  isTerminalExecutionState,
  parseDeviceId,
  type ExecutionRecord,
  type ExecutionTimeouts,
  type FirmwareRecord,
  type RetryPolicy,
} from '../protocol/index.js';
import { onAbort } from '../abort-listeners.js';
import { canceledRecord } from '../jobs/abort.js';
import type { JobStore } from '../store/job-store.js';
import type { StatusPublisher } from '../status/status-publisher.js';
import type { DeviceLink, RpcOutcome } from './device-link.js';
import { initialState, transition, type Command, type MachineEvent, type MachineState, type TimerName } from './machine.js';

export interface DriverDeps {
  jobs: JobStore;
  publisher: StatusPublisher;
  link: DeviceLink;
  logger: Logger;
  rpcTimeoutMs: number;
  pollMs: number;
  /** URL (with its download token) the device fetches the image from. */
  downloadUrl: (firmware: FirmwareRecord, executionId: string) => string;
  now?: () => number;
  /** Told after every successful save, with the record saved before (metrics); must not throw. */
  onSaved?: (previous: ExecutionRecord, next: ExecutionRecord) => void;
}

export interface DriverInput {
  record: ExecutionRecord;
  firmware: FirmwareRecord;
  timeouts: ExecutionTimeouts;
  /** The job's retry policy for transient failures before the point of no return. */
  retry?: RetryPolicy;
  /** Aborts supervision without deciding anything (worker shutdown): another worker re-attaches. */
  signal?: AbortSignal;
  /** Told (at least once) when the start is behind: the device accepted the install, or the run ended or stopped first. */
  onPastStart?: () => void;
}

/** Drives the execution until it is terminal (or handed over); resolves with the last record. */
export async function driveExecution(input: DriverInput, deps: DriverDeps): Promise<ExecutionRecord> {
  const run = new ExecutionRun(input, deps);
  return run.run();
}

class ExecutionRun {
  private state: MachineState;
  private readonly timers = new Map<TimerName, NodeJS.Timeout>();
  private readonly queue: MachineEvent[] = [];
  private busy = false;
  private finished = false;
  private resolve!: (r: ExecutionRecord) => void;
  private readonly log: Logger;
  private readonly address;
  private readonly now: () => number;
  /** The record as last stored by this run (or as found), for {@link DriverDeps.onSaved}. */
  private lastSaved: ExecutionRecord;

  constructor(
    private readonly input: DriverInput,
    private readonly deps: DriverDeps,
  ) {
    this.state = initialState(input.record);
    this.lastSaved = input.record;
    const address = parseDeviceId(input.record.deviceId);
    if (!address) throw new Error(`bad device id ${input.record.deviceId}`);
    this.address = address;
    this.now = deps.now ?? Date.now;
    this.log = deps.logger.child({ jobId: input.record.jobId, deviceId: input.record.deviceId });
  }

  async run(): Promise<ExecutionRecord> {
    const done = new Promise<ExecutionRecord>((r) => (this.resolve = r));
    const executionId = this.input.record.executionId;
    const localDevice = formatLocalDevice(this.address);
    const release = await this.deps.link.watch(this.address.portalId, {
      onDeviceEvent: (msg) => {
        if (msg.executionId !== executionId) return;
        this.feed(msg.kind === 'progress' ? { type: 'progress', phase: msg.phase, progress: msg.progress } : { type: 'device-failed', error: msg.error });
      },
      onSiteOnline: () => this.feed({ type: 'site-online' }),
      onDeviceOnline: (local) => {
        if (local === localDevice) this.feed({ type: 'site-online' });
      },
    });
    const forget = onAbort(this.input.signal, () => this.stop('handed over'));
    this.feed({ type: 'start' });
    try {
      return await done;
    } finally {
      forget();
      release();
    }
  }

  private feed(event: MachineEvent): void {
    if (this.finished) return;
    this.queue.push(event);
    if (!this.busy) void this.pump();
  }

  private async pump(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length && !this.finished) {
        const event = takeNext(this.queue);
        const t = transition(this.state, event, {
          now: this.now(),
          timeouts: this.input.timeouts,
          productIds: this.input.firmware.productIds,
          pollMs: this.deps.pollMs,
          retry: this.input.retry,
        });
        this.state = t.state;
        for (const c of t.commands) {
          if (this.finished) break;
          await this.execute(c);
        }
      }
    } catch (err) {
      // Redis or MQTT failed under us: stop supervising; BullMQ retries and the retry re-attaches.
      this.log.error({ err }, 'execution driver failed; handing over');
      this.stop('driver error');
    } finally {
      this.busy = false;
    }
  }

  private async execute(c: Command): Promise<void> {
    switch (c.type) {
      case 'acquire-lock': {
        const holder = await this.deps.jobs.acquireDeviceLock(this.state.record.deviceId, this.state.record.executionId);
        this.queue.push(holder ? { type: 'lock-denied', holder: holder.executionId, scope: holder.scope } : { type: 'lock-acquired' });
        return;
      }
      case 'rpc-status':
        void this.call('firmware.status', { device: this.localDevice() }).then((o) => this.feed(statusEvent(o)));
        return;
      case 'rpc-install': {
        const rec = this.state.record;
        const fw = this.input.firmware;
        const params = {
          device: this.localDevice(),
          url: this.deps.downloadUrl(fw, rec.executionId),
          sha256: fw.sha256,
          size: fw.size,
          version: fw.version,
          productIds: fw.productIds,
          jobId: rec.jobId,
          executionId: rec.executionId,
        };
        void this.call('firmware.install', params).then((o) => this.feed(installEvent(o)));
        return;
      }
      case 'arm-timer': {
        clearTimeout(this.timers.get(c.name));
        const timer = setTimeout(() => this.feed({ type: 'timer', name: c.name }), c.ms);
        this.timers.set(c.name, timer);
        return;
      }
      case 'clear-timers':
        this.clearTimers();
        return;
      case 'save':
        return this.save(c.record, c.event);
      case 'done':
        this.finish();
        return;
    }
  }

  private async save(rec: ExecutionRecord, event: Extract<Command, { type: 'save' }>['event']): Promise<void> {
    const res = await this.deps.jobs.update(rec, event);
    if (!res.ok) {
      const stored = await this.deps.jobs.execution(rec.jobId, rec.deviceId);
      if (res.reason === 'aborted' && stored && !isTerminalExecutionState(stored.state)) {
        // The job was aborted before this execution passed the point of no return (the abort's own
        // cancel lost a race with this run, or its process died midway): it ends here, canceled.
        const canceled = canceledRecord(stored, `job ${res.abortReason}`, new Date(this.now()).toISOString());
        this.state = { ...this.state, record: canceled.record };
        await this.save(canceled.record, canceled.event);
        this.stop('job aborted');
        return;
      }
      // Someone else decided (an abort canceled it, or another worker drives it): stand down.
      this.log.warn({ reason: res.reason, storedState: stored?.state, storedSeq: stored?.seq }, 'execution changed elsewhere; standing down');
      if (stored) this.state = { ...this.state, record: stored };
      this.stop(res.reason);
      return;
    }
    if (rec.installAccepted || isTerminalExecutionState(rec.state)) this.input.onPastStart?.();
    this.deps.onSaved?.(this.lastSaved, rec);
    this.lastSaved = rec;
    this.deps.publisher.stored(rec, res);
    if (event) this.log.info({ state: rec.state, phase: rec.phase, progress: rec.progress, error: rec.error?.code }, event.message);
  }

  private call(method: string, params: unknown): Promise<RpcOutcome> {
    return this.deps.link.call(this.address.portalId, method, params, this.deps.rpcTimeoutMs);
  }

  private localDevice(): string {
    return formatLocalDevice(this.address);
  }

  private clearTimers(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private stop(reason: string): void {
    if (this.finished) return;
    this.log.info({ reason }, 'stopped supervising execution');
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.input.onPastStart?.();
    this.clearTimers();
    this.queue.length = 0;
    this.resolve(this.state.record);
  }
}

/**
 * The next event to handle. Progress reports that queued up while the previous event was being
 * saved are collapsed to the furthest one: each would be a store write and status publish of its
 * own, and the browser would only see them overwrite each other. The furthest one carries all the
 * others do (the machine moves phase and percentage forward only), so nothing is decided
 * differently; it only costs less when reports arrive faster than they are saved (a download's 5 %
 * steps in quick succession). Only adjacent reports collapse, never across another event.
 */
export function takeNext(queue: MachineEvent[]): MachineEvent {
  let event = queue.shift()!;
  while (event.type === 'progress' && queue[0]?.type === 'progress' && !isBehind(queue[0], event)) {
    event = queue.shift()!;
  }
  return event;
}

/** `a` reports less than `b` (an earlier phase, or the same phase at a lower percentage). */
function isBehind(a: Extract<MachineEvent, { type: 'progress' }>, b: Extract<MachineEvent, { type: 'progress' }>): boolean {
  const pa = PHASES.indexOf(a.phase);
  const pb = PHASES.indexOf(b.phase);
  return pa < pb || (pa === pb && a.progress < b.progress);
}

function statusEvent(o: RpcOutcome): MachineEvent {
  if (o.ok) {
    return isDeviceStatus(o.result)
      ? { type: 'status', status: o.result }
      : { type: 'status-error', error: { code: 'bad-status', message: 'device sent a malformed status' } };
  }
  return 'timeout' in o ? { type: 'status-timeout' } : { type: 'status-error', error: o.error };
}

function installEvent(o: RpcOutcome): MachineEvent {
  if (o.ok) {
    return isInstallAccepted(o.result)
      ? { type: 'install-accepted' }
      : { type: 'install-refused', error: { code: 'bad-answer', message: 'device sent a malformed install answer' } };
  }
  return 'timeout' in o ? { type: 'install-timeout' } : { type: 'install-refused', error: o.error };
}
