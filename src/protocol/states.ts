/**
 * Job and execution states, the records published on the job topics and served by the API.
 * Execution states follow AWS IoT Jobs.
 */
import type { AbortRule, JobSchedule, JobTarget, ReleaseProgress, RetryPolicy, RolloutLimits } from './rollout.js';

export const EXECUTION_STATES = [
  'queued',
  'in_progress',
  'succeeded',
  'failed',
  'timed_out',
  'rejected',
  'canceled',
] as const;
export type ExecutionState = (typeof EXECUTION_STATES)[number];

export const TERMINAL_EXECUTION_STATES: readonly ExecutionState[] = [
  'succeeded',
  'failed',
  'timed_out',
  'rejected',
  'canceled',
];

export function isTerminalExecutionState(state: ExecutionState): boolean {
  return TERMINAL_EXECUTION_STATES.includes(state);
}

/** Phases of an execution while it is `in_progress`, in order. */
export const PHASES = ['preflight', 'downloading', 'verifying', 'installing', 'rebooting', 'confirming'] as const;
export type Phase = (typeof PHASES)[number];

export function isPhase(value: unknown): value is Phase {
  return typeof value === 'string' && (PHASES as readonly string[]).includes(value);
}

export const JOB_STATES = ['queued', 'in_progress', 'completed', 'aborted'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface ErrorInfo {
  code: string;
  message: string;
}

/** One device within one job. Published retained on `fleetflash/jobs/<jobId>/devices/<deviceId>`. */
export interface ExecutionRecord {
  executionId: string;
  jobId: string;
  deviceId: string;
  state: ExecutionState;
  phase: Phase | null;
  /** 0–100 within the whole update. */
  progress: number;
  fromVersion: string | null;
  toVersion: string;
  error: ErrorInfo | null;
  attempt: number;
  /** Monotonic per execution: a reader keeps the record with the highest seq. */
  seq: number;
  /** Set (atomically, before the install is sent) when a worker commits to sending the install; after it the execution can no longer be canceled. */
  installSentAt: string | null;
  /** True once the device accepted the install: the point of no return. */
  installAccepted: boolean;
  /** When the current phase began; phase timeouts count from here, also after a worker re-attaches. */
  phaseStartedAt: string | null;
  createdAt: string;
  startedAt: string | null;
  updatedAt: string;
  finishedAt: string | null;
  /**
   * Times the execution went back to `queued` before the point of no return (absent: none): retries
   * after a transient failure, and waits for a busy site.
   */
  retries?: number;
  /** How many of those re-queues were waits for a busy site (not counted as attempts; absent: none). */
  siteWaits?: number;
  /** While waiting for a busy site: when it was first found busy (the wait is bounded by `totalMs`). */
  siteBusySince?: string | null;
  /** While re-queued: not released again before this time. */
  retryAt?: string | null;
}

export type ExecutionCounts = Record<ExecutionState, number>;

export function emptyCounts(): ExecutionCounts {
  return { queued: 0, in_progress: 0, succeeded: 0, failed: 0, timed_out: 0, rejected: 0, canceled: 0 };
}

/** Per-phase and overall time limits of an execution, in milliseconds. */
export interface ExecutionTimeouts {
  preflightMs: number;
  downloadingMs: number;
  verifyingMs: number;
  installingMs: number;
  rebootingMs: number;
  confirmingMs: number;
  totalMs: number;
}

/** A job: one firmware image for a set of devices. Published retained on `fleetflash/jobs/<jobId>/status`. */
export interface JobRecord {
  id: string;
  state: JobState;
  firmwareId: string;
  firmwareVersion: string;
  firmwareName: string;
  /** Number of executions (devices) in the job; the list itself is served by the API, not the topic. */
  total: number;
  counts: ExecutionCounts;
  timeouts: ExecutionTimeouts;
  topicPrefix: string;
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  updatedAt: string;
  finishedAt: string | null;
  /** Monotonic per job: increments on every change of the summary. */
  seq: number;
  /** Finished executions per error code (`checksum-mismatch`, `incompatible`, `canceled`…). */
  errorCounts: Record<string, number>;
  /** How the devices were chosen; the executions are the resolved list. */
  target: JobTarget;
  rollout: RolloutLimits;
  abort: AbortRule | null;
  schedule: JobSchedule | null;
  retry: RetryPolicy;
  allowDowngrade: boolean;
  allowSameVersion: boolean;
  release: ReleaseProgress;
  /** Why the job was aborted (operator, failure threshold, canary), once it is. */
  abortReason: string | null;
  /** When the job was aborted, once it is. */
  abortedAt: string | null;
}

/** One line of a job's log. `seq` is contiguous per job (1, 2, 3…) so readers can detect gaps. */
export interface JobEvent {
  seq: number;
  ts: string;
  jobId: string;
  deviceId: string | null;
  level: 'info' | 'warn' | 'error';
  message: string;
  state?: ExecutionState;
  phase?: Phase | null;
}
