/**
 * The update flow of one execution as a pure state machine: `(state, event) → {state, commands}`.
 * No I/O and no clock reads: the driver feeds events (device answers, timers, lock results) with the
 * current time, and runs the commands (RPCs, timers, saves) it gets back. The same machine decides
 * what to do when a worker re-attaches after a crash: it asks the device, and never re-sends an
 * install the device has accepted.
 */
import {
  DEFAULT_RETRY_POLICY,
  PHASES,
  isTerminalExecutionState,
  retryDelayMs,
  type DeviceStatus,
  type ErrorInfo,
  type ExecutionRecord,
  type ExecutionState,
  type ExecutionTimeouts,
  type Phase,
  type RetryPolicy,
} from '../protocol/index.js';
import type { EventInput } from '../store/job-store.js';

export type TimerName = 'phase' | 'total' | 'poll';

export type MachineEvent =
  /** A worker took the execution: fresh (queued) or re-attaching (in_progress). */
  | { type: 'start' }
  | { type: 'lock-acquired' }
  /** `scope`: the device itself is updating (`device`), or the GX of its site or a product behind that GX (`site`). */
  | { type: 'lock-denied'; holder: string; scope: 'device' | 'site' }
  | { type: 'status'; status: DeviceStatus }
  /** The device answered `firmware.status` with an error (e.g. `device-offline` while rebooting). */
  | { type: 'status-error'; error: ErrorInfo }
  | { type: 'status-timeout' }
  | { type: 'install-accepted' }
  | { type: 'install-refused'; error: ErrorInfo }
  | { type: 'install-timeout' }
  | { type: 'progress'; phase: Phase; progress: number }
  | { type: 'device-failed'; error: ErrorInfo }
  /** The site's GX (its retained serial reappeared) or the device itself (`Connected` 1) is back: ask it. */
  | { type: 'site-online' }
  | { type: 'timer'; name: TimerName }
  /** Operator abort or rollout rule: honoured only before the install is sent. */
  | { type: 'cancel'; reason: string };

export type Command =
  | { type: 'acquire-lock' }
  | { type: 'rpc-status' }
  | { type: 'rpc-install' }
  | { type: 'arm-timer'; name: TimerName; ms: number }
  | { type: 'clear-timers' }
  /** Persist this version of the record (atomically with the log line). The driver stops if the store refuses it. */
  | { type: 'save'; record: ExecutionRecord; event: EventInput | null }
  /** The execution is terminal: release everything and finish. */
  | { type: 'done' };

export interface MachineState {
  record: ExecutionRecord;
  /** Install requests sent by this worker without an answer; bounds retries when answers are lost. */
  installTries: number;
  /** Unanswered status requests before the point of no return (device offline, broker restarting). */
  statusTries: number;
  /**
   * A phase or total timer fired after the install was sent: the device is asked once before the
   * execution is declared timed out (it may have moved on while no worker was listening).
   */
  timeoutCheck: 'phase' | 'total' | null;
}

export interface MachineContext {
  now: number;
  timeouts: ExecutionTimeouts;
  /** Product ids the image fits. */
  productIds: readonly number[];
  /** Poll the device when it has been quiet this long after the point of no return. */
  pollMs: number;
  /** The job's retries of transient failures before the point of no return; none when absent. */
  retry?: RetryPolicy;
}

export interface Transition {
  state: MachineState;
  commands: Command[];
}

/** How many unanswered install requests before the device counts as unreachable. */
export const MAX_INSTALL_TRIES = 2;
/** How many unanswered status requests in preflight (with doubling pauses) before giving up. */
export const MAX_PREFLIGHT_STATUS_TRIES = 4;
/**
 * Failures that say "not now" rather than "never": the device or its site was not reachable. Before
 * the point of no return they end the attempt and re-queue the execution under the job's retry
 * policy; after it nothing is ever retried. (A busy site is not a failure: see `waitForSite`.)
 */
export const TRANSIENT_FAILURE_CODES: ReadonlySet<string> = new Set(['device-offline', 'device-unreachable', 'timeout-preflight']);

/** The longest pause between two looks at a busy site (the job's backoff doubles up to it). */
export const SITE_WAIT_MAX_DELAY_MS = 30_000;
/** A wait for a busy site logs its first look, then every this many looks. */
export const SITE_WAIT_LOG_EVERY = 10;

const PHASE_TIMEOUT_KEY: Record<Phase, keyof ExecutionTimeouts> = {
  preflight: 'preflightMs',
  downloading: 'downloadingMs',
  verifying: 'verifyingMs',
  installing: 'installingMs',
  rebooting: 'rebootingMs',
  confirming: 'confirmingMs',
};

export function initialState(record: ExecutionRecord): MachineState {
  return { record, installTries: 0, statusTries: 0, timeoutCheck: null };
}

/** The one transition function. Events that do not apply in the current state change nothing. */
export function transition(state: MachineState, event: MachineEvent, ctx: MachineContext): Transition {
  const rec = state.record;
  if (isTerminalExecutionState(rec.state)) return noop(state);
  const m = new Builder(state, ctx);
  switch (event.type) {
    case 'start':
      return onStart(m);
    case 'lock-acquired':
      if (rec.phase !== 'preflight' || rec.installSentAt) return noop(state);
      m.cmd({ type: 'rpc-status' });
      return m.done();
    case 'lock-denied':
      // The site is busy only for as long as another device of it updates: wait for it.
      return event.scope === 'site'
        ? m.waitForSite(event.holder)
        : m.finish('rejected', { code: 'device-busy', message: `device is already updating in execution ${event.holder}` });
    case 'status':
      return state.timeoutCheck ? onStatusAfterTimeout(m, event.status, state.timeoutCheck) : onStatus(m, event.status);
    case 'status-error':
    case 'status-timeout':
      return onStatusUnavailable(m, event.type === 'status-error' ? event.error : null);
    case 'install-accepted':
      return onAccepted(m);
    case 'install-refused':
      if (rec.installAccepted) return noop(state);
      // An explicit refusal of our only install request proves nothing was installed: retry if transient.
      return m.finishOrRetry('rejected', {
        code: event.error.code === 'busy' ? 'device-busy' : event.error.code,
        message: event.error.message,
      }, state.installTries <= 1);
    case 'install-timeout':
      if (rec.installAccepted) return noop(state);
      // The request or its answer was lost: the device's status tells which.
      m.cmd({ type: 'rpc-status' });
      return m.done();
    case 'progress':
      return onProgress(m, event.phase, event.progress);
    case 'device-failed':
      if (!rec.installAccepted && !rec.installSentAt) return noop(state);
      return m.finish('failed', event.error);
    case 'site-online':
      if (!rec.installAccepted) return noop(state);
      m.cmd({ type: 'rpc-status' });
      return m.done();
    case 'timer':
      return onTimer(m, event.name);
    case 'cancel':
      if (rec.installSentAt || rec.installAccepted) return noop(state);
      return m.finish('canceled', { code: 'canceled', message: event.reason });
  }
}

function onStart(m: Builder): Transition {
  const rec = m.record;
  const attempt = rec.attempt + 1;
  if (rec.state === 'queued') {
    m.update({ state: 'in_progress', attempt, startedAt: m.iso, progress: 0, error: null, retryAt: null });
    m.enterPhase('preflight', 'preflight: checking the device');
    m.cmd({ type: 'arm-timer', name: 'total', ms: m.ctx.timeouts.totalMs });
    m.cmd({ type: 'acquire-lock' });
    return m.done();
  }
  // Re-attaching after another worker stopped: keep every persisted fact, ask the device.
  m.update({ attempt });
  m.save({ level: 'warn', message: `worker re-attached (attempt ${attempt}) in phase ${rec.phase ?? '-'}` });
  m.cmd({ type: 'arm-timer', name: 'total', ms: m.remaining(rec.startedAt, m.ctx.timeouts.totalMs) });
  if (rec.phase) m.cmd({ type: 'arm-timer', name: 'phase', ms: m.remaining(rec.phaseStartedAt, m.phaseTimeout(rec.phase)) });
  if (rec.installAccepted || rec.installSentAt) m.cmd({ type: 'rpc-status' });
  else m.cmd({ type: 'acquire-lock' });
  return m.done();
}

function onStatus(m: Builder, status: DeviceStatus): Transition {
  const rec = m.record;
  const ours = status.execution && status.execution.executionId === rec.executionId ? status.execution : null;
  if (!rec.installAccepted) {
    if (ours) {
      // The device has our install (its answer was lost, or a worker died after sending it).
      m.update({ installAccepted: true, installSentAt: rec.installSentAt ?? m.iso });
      m.save({ level: 'info', message: `device already runs this execution (phase ${ours.phase})` });
      return adoptDeviceExecution(m, ours, status);
    }
    if (rec.phase !== 'preflight') return noop(m.state);
    if (status.busy) {
      return m.finish('rejected', {
        code: 'device-busy',
        message: `device is busy with another update${status.execution ? ` (execution ${status.execution.executionId})` : ''}`,
      });
    }
    if (!m.ctx.productIds.includes(status.productId)) {
      return m.finish('rejected', {
        code: 'incompatible',
        message: `device reports product 0x${status.productId.toString(16)}, which the image does not fit`,
      });
    }
    if (rec.installSentAt && m.state.installTries === 0) {
      // Another worker sent the install before it stopped; it may still be on its way. Look again
      // before sending it a second time.
      m.state.installTries = 1;
      m.cmd({ type: 'arm-timer', name: 'poll', ms: m.ctx.pollMs });
      return m.done();
    }
    if (m.state.installTries >= MAX_INSTALL_TRIES) {
      return m.finish('failed', { code: 'device-unreachable', message: 'the device never answered the install request' });
    }
    m.update({ fromVersion: status.version ?? rec.fromVersion, installSentAt: m.iso });
    m.state.installTries += 1;
    m.save({ level: 'info', message: `sending install ${rec.fromVersion ?? status.version ?? '?'} → ${rec.toVersion}` });
    // The checks are done; the device now gets a full preflight period to accept.
    m.cmd({ type: 'arm-timer', name: 'phase', ms: m.phaseTimeout('preflight') });
    m.cmd({ type: 'rpc-install' });
    return m.done();
  }
  if (!ours) {
    return m.finish('failed', {
      code: 'execution-lost',
      message: `device does not report this execution${status.execution ? ` (it reports ${status.execution.executionId})` : ''}`,
    });
  }
  return adoptDeviceExecution(m, ours, status);
}

/** Brings the record in line with what the device says about our execution. */
function adoptDeviceExecution(m: Builder, ours: NonNullable<DeviceStatus['execution']>, status: DeviceStatus): Transition {
  if (ours.state === 'failed') {
    return m.finish('failed', ours.error ?? { code: 'device-failed', message: 'the device reports the update failed' });
  }
  if (ours.state === 'succeeded') {
    // Success means the device is back and reports the new version, not that the flash finished.
    if (m.record.phase !== 'confirming') m.enterPhase('confirming', `confirming: device reports ${status.version ?? 'no version'}`);
    if (status.version === m.record.toVersion) {
      m.update({ progress: 100 });
      return m.finish('succeeded', null, `succeeded: now on ${status.version}`);
    }
    return m.finish('failed', {
      code: 'version-mismatch',
      message: `device came back with ${status.version ?? 'no version'}, expected ${m.record.toVersion}`,
    });
  }
  applyProgress(m, ours.phase, ours.progress);
  m.cmd({ type: 'arm-timer', name: 'poll', ms: m.ctx.pollMs });
  return m.done();
}

/** The device's answer decides a timeout that fired after the install was sent. */
function onStatusAfterTimeout(m: Builder, status: DeviceStatus, check: 'phase' | 'total'): Transition {
  const before = m.record.phase;
  const ours = status.execution?.executionId === m.record.executionId;
  m.state.timeoutCheck = null;
  if (!m.record.installAccepted && !ours) return timedOut(m, check);
  const t = onStatus(m, status);
  if (isTerminalExecutionState(t.state.record.state)) return t;
  // The device moved to a later phase: that phase's timer starts now. Otherwise the timeout stands.
  if (check === 'phase' && t.state.record.phase !== before) return t;
  return timedOut(m, check);
}

function onStatusUnavailable(m: Builder, error: ErrorInfo | null): Transition {
  const rec = m.record;
  if (m.state.timeoutCheck) return timedOut(m, m.state.timeoutCheck);
  if (rec.installAccepted || rec.installSentAt) {
    // Expected while the device reboots; keep asking until a phase timeout decides.
    m.cmd({ type: 'arm-timer', name: 'poll', ms: m.ctx.pollMs });
    return m.done();
  }
  if (error?.code !== 'unknown-device' && m.state.statusTries < MAX_PREFLIGHT_STATUS_TRIES) {
    // Transient before the point of no return (site offline for a moment, broker restarting): ask again.
    m.cmd({ type: 'arm-timer', name: 'poll', ms: m.ctx.pollMs * 2 ** m.state.statusTries });
    m.state.statusTries += 1;
    return m.done();
  }
  return m.finishOrRetry('failed', {
    code: error?.code === 'unknown-device' ? 'unknown-device' : error?.code === 'device-offline' ? 'device-offline' : 'device-unreachable',
    message: error ? `device answered: ${error.message}` : 'the device did not answer the status request',
  });
}

function onAccepted(m: Builder): Transition {
  if (m.record.installAccepted) return noop(m.state);
  m.update({ installAccepted: true });
  m.enterPhase('downloading', 'install accepted by the device: past the point of no return');
  m.cmd({ type: 'arm-timer', name: 'poll', ms: m.ctx.pollMs });
  return m.done();
}

function onProgress(m: Builder, phase: Phase, progress: number): Transition {
  if (!m.record.installAccepted) {
    // Progress proves the device accepted; its answer may still be on the way.
    if (!m.record.installSentAt) return noop(m.state);
    m.update({ installAccepted: true });
  }
  applyProgress(m, phase, progress);
  m.cmd({ type: 'arm-timer', name: 'poll', ms: m.ctx.pollMs });
  return m.done();
}

/** Moves forward only: an older phase or a lower percentage is a stale report. */
function applyProgress(m: Builder, phase: Phase, progress: number): void {
  const rec = m.record;
  const cur = rec.phase ? PHASES.indexOf(rec.phase) : -1;
  const next = PHASES.indexOf(phase);
  const pct = Math.round(progress);
  if (next > cur && phase !== 'confirming') {
    // Phases run in a fixed order: a report that skips one (a short phase between two progress
    // reports) means the device went through it. Record it, so the log never misses a phase.
    for (let i = Math.max(cur + 1, PHASES.indexOf('downloading')); i < next; i++) {
      m.enterPhase(PHASES[i], `phase ${PHASES[i]} (passed between two device reports)`);
    }
    m.update({ progress: Math.max(pct, rec.progress) });
    m.enterPhase(phase, `phase ${phase}`);
  } else if (next === cur && pct > rec.progress) {
    m.update({ progress: pct });
    m.save(null);
  }
}

function onTimer(m: Builder, name: TimerName): Transition {
  const rec = m.record;
  if (name === 'poll') {
    if (rec.installAccepted || rec.installSentAt || rec.phase === 'preflight') m.cmd({ type: 'rpc-status' });
    return m.done();
  }
  if ((rec.installSentAt || rec.installAccepted) && !m.state.timeoutCheck) {
    // Past (or maybe past) the point of no return the device's own view decides: ask it once.
    m.state.timeoutCheck = name;
    m.cmd({ type: 'rpc-status' });
    return m.done();
  }
  return timedOut(m, name);
}

function timedOut(m: Builder, name: 'phase' | 'total'): Transition {
  const rec = m.record;
  m.state.timeoutCheck = null;
  if (name === 'total') {
    return m.finish('timed_out', {
      code: 'timeout',
      message: `execution did not finish within ${m.ctx.timeouts.totalMs} ms (phase ${rec.phase ?? '-'})`,
    });
  }
  const phase = rec.phase ?? 'preflight';
  const error = { code: `timeout-${phase}`, message: `phase ${phase} did not finish within ${m.phaseTimeout(phase)} ms` };
  // A preflight that never got as far as sending the install is safe to try again later.
  return phase === 'preflight' && !rec.installSentAt ? m.finishOrRetry('timed_out', error) : m.finish('timed_out', error);
}

function noop(state: MachineState): Transition {
  return { state, commands: [] };
}

/** Accumulates record changes and commands for one transition. */
class Builder {
  readonly state: MachineState;
  readonly commands: Command[] = [];
  readonly iso: string;

  constructor(
    prev: MachineState,
    readonly ctx: MachineContext,
  ) {
    this.state = { ...prev, record: { ...prev.record } };
    this.iso = new Date(ctx.now).toISOString();
  }

  get record(): ExecutionRecord {
    return this.state.record;
  }

  cmd(c: Command): void {
    this.commands.push(c);
  }

  update(patch: Partial<ExecutionRecord>): void {
    Object.assign(this.state.record, patch);
  }

  /** Bumps seq and persists, with an optional log line. */
  save(event: { level: 'info' | 'warn' | 'error'; message: string } | null): void {
    const r = this.state.record;
    r.seq += 1;
    r.updatedAt = this.iso;
    // A snapshot: one transition may save several versions (e.g. confirming, then succeeded).
    this.cmd({
      type: 'save',
      record: { ...r },
      event: event ? { deviceId: r.deviceId, level: event.level, message: event.message, state: r.state, phase: r.phase } : null,
    });
  }

  enterPhase(phase: Phase, message: string): void {
    this.update({ phase, phaseStartedAt: this.iso });
    this.save({ level: 'info', message });
    this.cmd({ type: 'arm-timer', name: 'phase', ms: this.phaseTimeout(phase) });
  }

  finish(state: ExecutionState, error: ErrorInfo | null, message?: string): Transition {
    this.update({ state, error, finishedAt: this.iso });
    const level = state === 'succeeded' ? 'info' : state === 'canceled' ? 'warn' : 'error';
    this.save({ level, message: message ?? `${state}: ${error ? `${error.code}: ${error.message}` : ''}` });
    this.cmd({ type: 'clear-timers' });
    this.cmd({ type: 'done' });
    return this.done();
  }

  /**
   * Ends this attempt. A transient failure before the point of no return, with attempts left, puts
   * the execution back to `queued` with `retryAt` (the rollout releases it again then); anything
   * else finishes it.
   */
  finishOrRetry(state: ExecutionState, error: ErrorInfo, eligible = true): Transition {
    const rec = this.record;
    const policy = this.ctx.retry;
    // Waits for a busy site are re-queues too, but not attempts.
    const failed = (rec.retries ?? 0) - (rec.siteWaits ?? 0);
    if (!eligible || !policy || rec.installAccepted || !TRANSIENT_FAILURE_CODES.has(error.code) || failed + 1 >= policy.maxAttempts) {
      return this.finish(state, error);
    }
    const delay = retryDelayMs(policy, failed);
    return this.requeue(error, delay, { siteBusySince: null }, {
      level: 'warn',
      message: `attempt ${failed + 1} of ${policy.maxAttempts} failed (${error.code}); retrying in ${delay} ms`,
    });
  }

  /**
   * Another device of the site is updating (a GX and the devices behind it never update at once):
   * not a failure, the execution waits its turn. It goes back to `queued` like a retry, without
   * using one of the job's attempts (`siteWaits` counts these re-queues), and looks again when the
   * store wakes it (another execution of the site freed its lock: store/lua.ts) or at the latest after
   * the job's backoff, doubling up to SITE_WAIT_MAX_DELAY_MS. A site that stays busy for the execution's
   * whole total timeout (counted from the first look that found it busy) ends it `rejected`
   * `site-busy`. Only ever before the point of no return: the lock is taken in preflight.
   */
  waitForSite(holder: string): Transition {
    const rec = this.record;
    const since = rec.siteBusySince ?? this.iso;
    const waitedMs = this.ctx.now - Date.parse(since);
    const busy = `a GX and the devices behind it never update at once; execution ${holder} is updating on this site`;
    if (waitedMs >= this.ctx.timeouts.totalMs) {
      return this.finish('rejected', { code: 'site-busy', message: `${busy}; the site stayed busy for ${Math.round(waitedMs / 1000)} s` });
    }
    const waits = rec.siteWaits ?? 0;
    const backoffMs = (this.ctx.retry ?? DEFAULT_RETRY_POLICY).backoffMs;
    const delay = Math.min(SITE_WAIT_MAX_DELAY_MS, backoffMs * 2 ** waits, this.ctx.timeouts.totalMs - waitedMs);
    // One log line when the wait begins and one every SITE_WAIT_LOG_EVERY looks, not one per look: an
    // hour's wait is ~120 looks, and the record shows each of them anyway (siteWaits, retryAt).
    const look = waits + 1;
    const message = !rec.siteBusySince
      ? `waiting for the site (site-busy): execution ${holder} is updating on it; looking again in ${delay} ms`
      : look % SITE_WAIT_LOG_EVERY === 0
        ? `still waiting for the site (site-busy) after ${Math.round(waitedMs / 1000)} s: execution ${holder} is updating on it`
        : null;
    return this.requeue({ code: 'site-busy', message: busy }, delay, { siteWaits: look, siteBusySince: since }, message ? { level: 'info', message } : null);
  }

  /**
   * Back to `queued`, released again after `delayMs` (the store frees the device lock and the slot).
   * `installSentAt` is cleared only here, where the device provably has nothing: it was never sent
   * the install, or refused it explicitly.
   */
  private requeue(error: ErrorInfo, delayMs: number, patch: Partial<ExecutionRecord>, event: { level: 'info' | 'warn'; message: string } | null): Transition {
    this.update({
      ...patch,
      state: 'queued',
      phase: null,
      progress: 0,
      error,
      installSentAt: null,
      phaseStartedAt: null,
      retries: (this.record.retries ?? 0) + 1,
      retryAt: new Date(this.ctx.now + delayMs).toISOString(),
    });
    this.save(event);
    this.cmd({ type: 'clear-timers' });
    this.cmd({ type: 'done' });
    return this.done();
  }

  phaseTimeout(phase: Phase): number {
    return this.ctx.timeouts[PHASE_TIMEOUT_KEY[phase]];
  }

  remaining(since: string | null, limitMs: number): number {
    if (!since) return limitMs;
    return Math.max(0, limitMs - (this.ctx.now - Date.parse(since)));
  }

  done(): Transition {
    return { state: this.state, commands: this.commands };
  }
}
