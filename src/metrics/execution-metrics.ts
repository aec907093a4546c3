/**
 * Execution metrics, fed by the update driver each time it saves an execution record: entries into
 * each state (with the error code), how long each phase took, and how long whole executions took.
 * The driver hands over the previous and the new record; everything here is derived from the pair, so
 * a worker that re-attaches after a crash measures the phase it finds from the record's own
 * `phaseStartedAt`, not from when it arrived.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { isTerminalExecutionState, type ExecutionRecord } from '../protocol/index.js';
import { METRIC_PREFIX } from './metrics-registry.js';

/** What the driver reports after every successful save. */
export interface ExecutionObserver {
  saved(previous: ExecutionRecord, next: ExecutionRecord): void;
}

/** One measurement derived from a (previous, next) pair of records. */
export type ExecutionObservation =
  | { kind: 'state'; state: string; errorCode: string }
  | { kind: 'phase'; phase: string; outcome: string; seconds: number }
  | { kind: 'execution'; state: string; seconds: number };

/** Error codes come from devices: kept as labels only while short and plain, and at most this many distinct ones. */
const MAX_ERROR_CODES = 200;
const ERROR_CODE_RE = /^[A-Za-z0-9._-]{1,40}$/;

/** Phase durations span milliseconds (tests, a refused preflight) to an hour (a slow VE.Bus flash). */
const PHASE_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
const EXECUTION_BUCKETS_S = [0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];

function seconds(fromIso: string | null, toIso: string): number | null {
  if (!fromIso) return null;
  const ms = Date.parse(toIso) - Date.parse(fromIso);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : null;
}

/** Pure: the measurements one save yields. */
export function observe(previous: ExecutionRecord, next: ExecutionRecord): ExecutionObservation[] {
  const out: ExecutionObservation[] = [];
  if (previous.state !== next.state) {
    out.push({ kind: 'state', state: next.state, errorCode: next.error?.code ?? 'none' });
  }
  const phaseEnded = previous.phase !== null && (previous.phase !== next.phase || next.state !== 'in_progress');
  if (phaseEnded && previous.state === 'in_progress') {
    const s = seconds(previous.phaseStartedAt, next.updatedAt);
    const outcome = next.state === 'in_progress' || next.state === 'succeeded' ? 'completed' : next.state === 'queued' ? 'retry' : next.state;
    if (s !== null) out.push({ kind: 'phase', phase: previous.phase!, outcome, seconds: s });
  }
  if (previous.state !== next.state && isTerminalExecutionState(next.state)) {
    const s = seconds(next.startedAt, next.finishedAt ?? next.updatedAt);
    if (s !== null) out.push({ kind: 'execution', state: next.state, seconds: s });
  }
  return out;
}

/** The execution collectors of one registry. */
export class ExecutionMetrics implements ExecutionObserver {
  private readonly states: Counter<'state' | 'error_code'>;
  private readonly phases: Histogram<'phase' | 'outcome'>;
  private readonly executions: Histogram<'state'>;
  private readonly errorCodes = new Set<string>();

  constructor(registry: Registry) {
    this.states = new Counter({
      name: `${METRIC_PREFIX}executions_total`,
      help: 'Executions that entered a state in this worker, by state and error code (none without an error)',
      labelNames: ['state', 'error_code'],
      registers: [registry],
    });
    this.phases = new Histogram({
      name: `${METRIC_PREFIX}execution_phase_duration_seconds`,
      help: 'Time an execution spent in a phase, by phase and how it ended (completed, failed, timed_out, canceled, rejected, retry)',
      labelNames: ['phase', 'outcome'],
      buckets: PHASE_BUCKETS_S,
      registers: [registry],
    });
    this.executions = new Histogram({
      name: `${METRIC_PREFIX}execution_duration_seconds`,
      help: 'Time from start to end of finished executions, by final state',
      labelNames: ['state'],
      buckets: EXECUTION_BUCKETS_S,
      registers: [registry],
    });
  }

  saved(previous: ExecutionRecord, next: ExecutionRecord): void {
    for (const o of observe(previous, next)) {
      if (o.kind === 'state') this.states.inc({ state: o.state, error_code: this.errorLabel(o.errorCode) });
      else if (o.kind === 'phase') this.phases.observe({ phase: o.phase, outcome: o.outcome }, o.seconds);
      else this.executions.observe({ state: o.state }, o.seconds);
    }
  }

  /** Bounded label cardinality: a misbehaving device cannot mint a time series per message. */
  private errorLabel(code: string): string {
    if (!ERROR_CODE_RE.test(code)) return 'other';
    if (this.errorCodes.has(code)) return code;
    if (this.errorCodes.size >= MAX_ERROR_CODES) return 'other';
    this.errorCodes.add(code);
    return code;
  }
}
