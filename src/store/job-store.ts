/**
 * Jobs, executions and job logs in Redis. Every execution change goes through one Lua script
 * (see lua.ts), so counts, job state, device locks and log lines move together.
 */
import type { ChainableCommander, Redis } from 'ioredis';
import {
  DEFAULT_RETRY_POLICY,
  emptyCounts,
  EXECUTION_STATES,
  isTerminalExecutionState,
  parseDeviceId,
  parseExecutionId,
  type DeviceRecord,
  type HistoryEntry,
  type LastUpdate,
  jobTopicPrefix,
  type ExecutionRecord,
  type ExecutionTimeouts,
  type JobEvent,
  type JobRecord,
  type JobState,
  type JobTarget,
  type AbortRule,
  type JobSchedule,
  type RetryPolicy,
  type RolloutLimits,
} from '../protocol/index.js';
import { HISTORY_LIMIT } from './device-store.js';
import type { Keys } from './keys.js';
import { ABORT_JOB, ACQUIRE_LOCK, APPEND_EVENT, STEAL_LOCK, UPDATE_EXECUTION, UPDATE_PROGRESS } from './lua.js';
import { replyValues } from './replies.js';

/** The part of a job fixed at launch. */
export interface JobSpec {
  id: string;
  firmwareId: string;
  firmwareVersion: string;
  firmwareName: string;
  timeouts: ExecutionTimeouts;
  createdBy: string;
  createdAt: string;
  /** Rollout settings; absent in jobs stored before rollouts existed (read as their defaults). */
  target?: JobTarget;
  rollout?: RolloutLimits;
  abort?: AbortRule | null;
  schedule?: JobSchedule | null;
  retry?: RetryPolicy;
  allowDowngrade?: boolean;
  allowSameVersion?: boolean;
}

/** Initial values of a new job's hash beyond the ones `create` derives (counts of launch rejections…). */
export interface JobInit {
  /** Extra hash fields, e.g. `c:rejected`, `e:not-newer`, rollout bookkeeping. */
  fields: Record<string, string>;
  /** Appends more writes to the same transaction (the rollout's release order, history entries). */
  extend?: (multi: ChainableCommander) => void;
}

export type EventInput = Omit<JobEvent, 'seq' | 'ts' | 'jobId'>;

export type UpdateResult =
  /**
   * `job` is null when the write changed nothing its summary shows (a progress report). `recordJson` is
   * the record as stored, for its status publish (serialized once per save, not twice).
   */
  | { ok: true; job: JobRecord | null; event: JobEvent | null; device: DeviceRecord | null; recordJson: string }
  | { ok: false; reason: 'missing' | 'stale' | 'terminal' }
  /** The job is aborted and this execution is not past the point of no return: only its end may be stored. */
  | { ok: false; reason: 'aborted'; abortReason: string };

/** Who holds a lock an execution asked for: another execution on its device, or on a device of its site that may not update alongside it. */
export interface LockHolder {
  executionId: string;
  scope: 'device' | 'site';
}

type ScriptRedis = Redis & {
  ffUpdateExecution(...args: string[]): Promise<unknown[]>;
  ffUpdateProgress(...args: string[]): Promise<unknown[]>;
  ffAppendEvent(...args: string[]): Promise<string>;
  ffAcquireLock(...args: (string | number)[]): Promise<string[]>;
  ffStealLock(...args: string[]): Promise<number>;
  ffAbortJob(...args: string[]): Promise<number>;
};

/** Registers the scripts once per connection (ioredis caches them by SHA). */
function withScripts(redis: Redis): ScriptRedis {
  const r = redis as ScriptRedis;
  if (typeof r.ffUpdateExecution !== 'function') {
    redis.defineCommand('ffUpdateExecution', { numberOfKeys: 10, lua: UPDATE_EXECUTION });
    redis.defineCommand('ffUpdateProgress', { numberOfKeys: 2, lua: UPDATE_PROGRESS });
    redis.defineCommand('ffAppendEvent', { numberOfKeys: 2, lua: APPEND_EVENT });
    // The number of keys comes first in each call: the site's locks vary.
    redis.defineCommand('ffAcquireLock', { lua: ACQUIRE_LOCK });
    redis.defineCommand('ffStealLock', { numberOfKeys: 1, lua: STEAL_LOCK });
    redis.defineCommand('ffAbortJob', { numberOfKeys: 1, lua: ABORT_JOB });
  }
  return r;
}

export class JobStore {
  private readonly redis: ScriptRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    this.redis = withScripts(redis);
  }

  /**
   * Writes the job and all its executions in one transaction, with `init` (launch rejections, the
   * rollout's bookkeeping) in the same one: a reader sees the whole job or nothing.
   */
  async create(spec: JobSpec, executions: ExecutionRecord[], firstEvent: EventInput, init?: JobInit): Promise<JobRecord> {
    const k = this.keys;
    const counts = emptyCounts();
    for (const e of executions) counts[e.state]++;
    const fields: Record<string, string> = {
      spec: JSON.stringify(spec),
      state: 'queued',
      seq: '1',
      total: String(executions.length),
      updatedAt: spec.createdAt,
      eventSeq: '1',
    };
    for (const s of EXECUTION_STATES) fields[`c:${s}`] = String(counts[s]);
    Object.assign(fields, init?.fields);
    const multi = this.redis.multi();
    multi.hset(k.job(spec.id), fields);
    // HSET with many fields in chunks keeps each command small for very large jobs.
    for (let i = 0; i < executions.length; i += 1000) {
      const chunk: string[] = [];
      for (const e of executions.slice(i, i + 1000)) chunk.push(e.deviceId, JSON.stringify(e));
      multi.hset(k.jobExecutions(spec.id), ...chunk);
    }
    multi.rpush(k.jobEvents(spec.id), JSON.stringify(this.event(spec.id, 1, spec.createdAt, firstEvent)));
    multi.zadd(k.jobs(), Date.parse(spec.createdAt), spec.id);
    init?.extend?.(multi);
    if (!replyValues(await multi.exec())) throw new Error(`job ${spec.id} was not written`);
    return toJobRecord(fields);
  }

  async get(jobId: string): Promise<JobRecord | null> {
    const h = await this.redis.hgetall(this.keys.job(jobId));
    return h.spec ? toJobRecord(h) : null;
  }

  /** Newest first. */
  async list(limit = 100, offset = 0): Promise<JobRecord[]> {
    const ids = await this.redis.zrevrange(this.keys.jobs(), offset, offset + limit - 1);
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.job(id));
    const res = (await pipe.exec()) ?? [];
    return res.map(([, h]) => h as Record<string, string>).filter((h) => h && h.spec).map(toJobRecord);
  }

  async executions(jobId: string): Promise<ExecutionRecord[]> {
    return toExecutions(await this.redis.hgetall(this.keys.jobExecutions(jobId)));
  }

  /**
   * The job and its executions as of one moment (one transaction): never a job without the executions
   * a deletion (JOB_RETENTION_MS) or a launch writes with it. Null when there is no such job.
   */
  async withExecutions(jobId: string): Promise<{ job: JobRecord; executions: ExecutionRecord[] } | null> {
    const values = replyValues(await this.redis.multi().hgetall(this.keys.job(jobId)).hgetall(this.keys.jobExecutions(jobId)).exec());
    if (!values) throw new Error(`job ${jobId} was not read`);
    const [job, executions] = values as Record<string, string>[];
    return job.spec ? { job: toJobRecord(job), executions: toExecutions(executions) } : null;
  }

  async execution(jobId: string, deviceId: string): Promise<ExecutionRecord | null> {
    const v = await this.redis.hget(this.keys.jobExecutions(jobId), deviceId);
    return v ? (JSON.parse(v) as ExecutionRecord) : null;
  }

  /**
   * Stores a new version of an execution if it is newer than the stored one and the stored one is not
   * terminal; adjusts counts, job state and the device lock, and appends the log line, atomically.
   * A terminal record also writes the device's last update, installed version and history entry.
   */
  async update(record: ExecutionRecord, event: EventInput | null): Promise<UpdateResult> {
    const k = this.keys;
    const recordJson = JSON.stringify(record);
    if (event === null) {
      // Most writes are progress reports: same state, no log line. The short script first; a state
      // change (a retry going back to queued without a line) is refused by it and written in full.
      const res = await this.redis.ffUpdateProgress(
        k.job(record.jobId),
        k.jobExecutions(record.jobId),
        record.deviceId,
        recordJson,
        String(record.seq),
        record.state,
        record.updatedAt,
      );
      if (Number(res[0]) === 1) return { ok: true, job: null, event: null, device: null, recordJson };
      if (String(res[1]) !== 'changed') return refusal(res);
    }
    const ev = event ? JSON.stringify(this.eventBody(record.jobId, record.updatedAt, event)) : '';
    const terminal = isTerminalExecutionState(record.state);
    // The device's last update and history entry are written only when the execution ends.
    const lastUpdateJson = terminal ? JSON.stringify(lastUpdateOf(record)) : '';
    const historyJson = terminal ? JSON.stringify(historyEntryOf(record)) : '';
    // Re-queued to wait for its busy site: woken when another execution of the site frees its lock.
    const waiting = record.state === 'queued' && record.error?.code === 'site-busy';
    const portalId = parseDeviceId(record.deviceId)?.portalId ?? record.deviceId;
    const res = await this.redis.ffUpdateExecution(
      k.job(record.jobId),
      k.jobExecutions(record.jobId),
      k.jobEvents(record.jobId),
      k.deviceLock(record.deviceId),
      k.devices(),
      k.deviceHistory(record.deviceId),
      k.jobInFlight(record.jobId),
      k.jobRetries(record.jobId),
      k.jobCanary(record.jobId),
      k.siteWaiters(portalId),
      record.deviceId,
      recordJson,
      String(record.seq),
      record.state,
      ev,
      record.updatedAt,
      record.executionId,
      historyJson,
      lastUpdateJson,
      terminal && record.state === 'succeeded' ? record.toVersion : '',
      String(HISTORY_LIMIT),
      terminal ? (record.error?.code ?? '') : '',
      record.state === 'queued' && record.retryAt ? String(Date.parse(record.retryAt)) : '',
      k.rolloutChannel(),
      record.jobId,
      waiting ? `${k.jobRetries(record.jobId)}|${record.jobId}|${record.deviceId}` : '',
      // The record's own clock (the driver's): a fake one in tests, like the retry times it wakes.
      String(Date.parse(record.updatedAt)),
    );
    if (Number(res[0]) !== 1) return refusal(res);
    let job: JobRecord | null = null;
    if (res.length > 3) {
      const h: Record<string, string> = {};
      for (let i = 3; i < res.length; i += 2) h[String(res[i])] = String(res[i + 1]);
      job = toJobRecord(h);
    }
    return {
      ok: true,
      job,
      event: res[1] ? (JSON.parse(String(res[1])) as JobEvent) : null,
      device: res[2] ? (JSON.parse(String(res[2])) as DeviceRecord) : null,
      recordJson,
    };
  }

  /** Appends a log line that changes no state (e.g. a device reporting after a timeout). */
  async appendEvent(jobId: string, event: EventInput, now = new Date().toISOString()): Promise<JobEvent> {
    const stored = await this.redis.ffAppendEvent(
      this.keys.job(jobId),
      this.keys.jobEvents(jobId),
      JSON.stringify(this.eventBody(jobId, now, event)),
    );
    return JSON.parse(stored) as JobEvent;
  }

  /** Log lines with seq > after, oldest first. Seq n is stored at list index n-1. */
  async events(jobId: string, after = 0, limit = 1000): Promise<JobEvent[]> {
    const raw = await this.redis.lrange(this.keys.jobEvents(jobId), after, after + limit - 1);
    return raw.map((r) => JSON.parse(r) as JobEvent);
  }

  /** Marks a queued or running job aborted, with why; false when it is unknown or already finished. */
  async markAborted(jobId: string, reason: string, now = new Date().toISOString()): Promise<boolean> {
    return (await this.redis.ffAbortJob(this.keys.job(jobId), now, reason)) === 1;
  }

  /**
   * Takes the per-device lock for an execution. Returns null when taken, else who holds it: another
   * execution on the device, or one on a device of the same site that may not update alongside it.
   * A GX and the products behind it never update at once: the GX flashes its products itself, and
   * its own update reboots it, which would cut a product's flash short. Products among themselves
   * do not exclude each other. A holder whose execution is terminal or gone is replaced (or freed,
   * for another device's lock): a lock outlives nothing it guards.
   */
  async acquireDeviceLock(deviceId: string, executionId: string): Promise<LockHolder | null> {
    const key = this.keys.deviceLock(deviceId);
    const site = await this.siteLocks(deviceId);
    // Twice at most: once more after freeing a dead holder's lock on another device of the site.
    for (let attempt = 0; ; attempt++) {
      const [scope, holder, holderKey] = await this.redis.ffAcquireLock(1 + site.length, key, ...site, executionId);
      if (scope === undefined) return null;
      const held = parseExecutionId(holder);
      const rec = await this.execution(held.jobId, held.deviceId);
      const dead = !rec || isTerminalExecutionState(rec.state);
      if (!dead || attempt > 0) return { executionId: holder, scope: scope === 'site' ? 'site' : 'device' };
      if (scope !== 'site') return (await this.redis.ffStealLock(key, holder, executionId)) === 1 ? null : { executionId: holder, scope: 'device' };
      await this.redis.ffStealLock(holderKey, holder, '');
    }
  }

  /** Lock keys of the devices of `deviceId`'s site that may not update alongside it. */
  private async siteLocks(deviceId: string): Promise<string[]> {
    const address = parseDeviceId(deviceId);
    if (!address) return [];
    const platform = address.service === 'platform';
    const others = (await this.redis.smembers(this.keys.siteDevices(address.portalId))).filter(
      (id) => id !== deviceId && (parseDeviceId(id)?.service === 'platform') !== platform,
    );
    return others.map((id) => this.keys.deviceLock(id));
  }

  async deviceLockHolder(deviceId: string): Promise<string | null> {
    return this.redis.get(this.keys.deviceLock(deviceId));
  }

  private eventBody(jobId: string, ts: string, e: EventInput): Omit<JobEvent, 'seq'> {
    return { ts, jobId, deviceId: e.deviceId, level: e.level, message: e.message, ...(e.state ? { state: e.state } : {}), ...(e.phase !== undefined ? { phase: e.phase } : {}) };
  }

  private event(jobId: string, seq: number, ts: string, e: EventInput): JobEvent {
    return { seq, ...this.eventBody(jobId, ts, e) };
  }
}

/** What a device's record keeps of the execution that last ended on it. */
export function lastUpdateOf(record: ExecutionRecord): LastUpdate {
  return {
    jobId: record.jobId,
    executionId: record.executionId,
    state: record.state,
    fromVersion: record.fromVersion,
    toVersion: record.toVersion,
    finishedAt: record.finishedAt,
    errorCode: record.error?.code ?? null,
  };
}

/** A device's update-history entry for an execution that ended (at launch too: never started, no duration). */
export function historyEntryOf(record: ExecutionRecord): HistoryEntry {
  const { startedAt, finishedAt } = record;
  return {
    ...lastUpdateOf(record),
    startedAt,
    durationMs: startedAt && finishedAt ? Date.parse(finishedAt) - Date.parse(startedAt) : null,
    errorMessage: record.error?.message ?? null,
  };
}

/** Execution records of a job's executions hash, by device id. */
function toExecutions(h: Record<string, string>): ExecutionRecord[] {
  return Object.values(h)
    .map((v) => JSON.parse(v) as ExecutionRecord)
    .sort((a, b) => a.deviceId.localeCompare(b.deviceId));
}

/** The job record from its hash (the fields written by `create`, the Lua scripts and the rollout). */
export function toJobRecord(h: Record<string, string>): JobRecord {
  const spec = JSON.parse(h.spec) as JobSpec;
  const counts = emptyCounts();
  for (const s of EXECUTION_STATES) counts[s] = Number(h[`c:${s}`] ?? 0);
  const errorCounts: Record<string, number> = {};
  for (const [field, value] of Object.entries(h)) {
    if (field.startsWith('e:') && Number(value) > 0) errorCounts[field.slice(2)] = Number(value);
  }
  const total = Number(h.total);
  return {
    id: spec.id,
    state: h.state as JobState,
    firmwareId: spec.firmwareId,
    firmwareVersion: spec.firmwareVersion,
    firmwareName: spec.firmwareName,
    total,
    counts,
    timeouts: spec.timeouts,
    topicPrefix: jobTopicPrefix(spec.id),
    createdBy: spec.createdBy,
    createdAt: spec.createdAt,
    startedAt: h.startedAt ?? null,
    updatedAt: h.updatedAt,
    finishedAt: h.finishedAt ?? null,
    seq: Number(h.seq),
    errorCounts,
    target: spec.target ?? { kind: 'devices', count: total },
    rollout: spec.rollout ?? {},
    abort: spec.abort ?? null,
    schedule: spec.schedule ?? null,
    retry: spec.retry ?? DEFAULT_RETRY_POLICY,
    allowDowngrade: spec.allowDowngrade ?? false,
    allowSameVersion: spec.allowSameVersion ?? false,
    release: {
      eligible: Number(h.eligible ?? total),
      released: Number(h.next ?? 0),
      inFlight: Number(h.inflight ?? 0),
      retries: Number(h.retries ?? 0),
      wave: h.wave === 'canary' || h.wave === 'rest' ? h.wave : null,
      canarySize: Number(h.canarySize ?? 0),
      canaryFinished: Number(h['w:done'] ?? 0),
      canarySucceeded: Number(h['w:ok'] ?? 0),
    },
    abortReason: h.abortReason ?? null,
    abortedAt: h.abortedAt ?? null,
  };
}

/** An update script's refusal `{0, reason[, abortReason]}` as an UpdateResult. */
function refusal(res: unknown[]): Extract<UpdateResult, { ok: false }> {
  const reason = String(res[1]);
  if (reason === 'aborted') return { ok: false, reason, abortReason: String(res[2]) };
  return { ok: false, reason: reason as 'missing' | 'stale' | 'terminal' };
}
