import { initialState, MAX_INSTALL_TRIES, MAX_PREFLIGHT_STATUS_TRIES, SITE_WAIT_LOG_EVERY, SITE_WAIT_MAX_DELAY_MS, transition, type Command, type MachineContext, type MachineEvent, type MachineState } from '../../src/update/machine.js';
import { DEFAULT_RETRY_POLICY, type DeviceStatus, type ExecutionRecord, type Phase } from '../../src/protocol/index.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const ctx: MachineContext = {
  now: T0,
  productIds: [0xa058],
  pollMs: 500,
  timeouts: {
    preflightMs: 1000,
    downloadingMs: 2000,
    verifyingMs: 3000,
    installingMs: 4000,
    rebootingMs: 5000,
    confirmingMs: 6000,
    totalMs: 60_000,
  },
};

function record(patch: Partial<ExecutionRecord> = {}): ExecutionRecord {
  return {
    executionId: 'jabc12345.c0619ab1d2e3.solarcharger.258',
    jobId: 'jabc12345',
    deviceId: 'c0619ab1d2e3.solarcharger.258',
    state: 'queued',
    phase: null,
    progress: 0,
    fromVersion: 'v1.57',
    toVersion: 'v1.61',
    error: null,
    attempt: 0,
    seq: 1,
    installSentAt: null,
    installAccepted: false,
    phaseStartedAt: null,
    createdAt: new Date(T0).toISOString(),
    startedAt: null,
    updatedAt: new Date(T0).toISOString(),
    finishedAt: null,
    ...patch,
  };
}

const inPreflight = (patch: Partial<ExecutionRecord> = {}) =>
  record({ state: 'in_progress', phase: 'preflight', startedAt: new Date(T0).toISOString(), phaseStartedAt: new Date(T0).toISOString(), seq: 2, attempt: 1, ...patch });
const sent = (patch: Partial<ExecutionRecord> = {}) => inPreflight({ installSentAt: new Date(T0).toISOString(), seq: 3, ...patch });
const accepted = (phase: Phase = 'downloading', patch: Partial<ExecutionRecord> = {}) =>
  sent({ installAccepted: true, phase, seq: 4, progress: 10, ...patch });

function status(patch: Partial<DeviceStatus> = {}, exec: Partial<NonNullable<DeviceStatus['execution']>> | null = null): DeviceStatus {
  return {
    device: 'solarcharger/258',
    productId: 0xa058,
    version: 'v1.57',
    busy: false,
    bootId: 'b1',
    execution: exec
      ? {
          executionId: 'jabc12345.c0619ab1d2e3.solarcharger.258',
          jobId: 'jabc12345',
          state: 'running',
          phase: 'downloading',
          progress: 20,
          error: null,
          targetVersion: 'v1.61',
          ...exec,
        }
      : null,
    ...patch,
  };
}

function run(rec: ExecutionRecord, event: MachineEvent, extra: Partial<MachineState> = {}) {
  return transition({ ...initialState(rec), ...extra }, event, ctx);
}
const types = (cs: Command[]) => cs.map((c) => c.type);

describe('update state machine', () => {
  // Every (state, event) pair that matters: [name, record, event, expected state, expected phase, commands that must appear]
  const table: [string, ExecutionRecord, MachineEvent, ExecutionRecord['state'], Phase | null, Command['type'][]][] = [
    ['fresh start enters preflight and takes the lock', record(), { type: 'start' }, 'in_progress', 'preflight', ['save', 'arm-timer', 'acquire-lock']],
    ['lock acquired asks the device', inPreflight(), { type: 'lock-acquired' }, 'in_progress', 'preflight', ['rpc-status']],
    ['lock denied rejects', inPreflight(), { type: 'lock-denied', holder: 'jother.x', scope: 'device' }, 'rejected', 'preflight', ['save', 'clear-timers', 'done']],
    ['idle compatible device gets the install', inPreflight(), { type: 'status', status: status() }, 'in_progress', 'preflight', ['save', 'rpc-install']],
    ['busy device rejects', inPreflight(), { type: 'status', status: status({ busy: true }, { executionId: 'jzzz.other' }) }, 'rejected', 'preflight', ['done']],
    ['other product rejects', inPreflight(), { type: 'status', status: status({ productId: 0x2780 }) }, 'rejected', 'preflight', ['done']],
    ['status timeout in preflight asks again later', inPreflight(), { type: 'status-timeout' }, 'in_progress', 'preflight', ['arm-timer']],
    ['unknown device in preflight fails at once', inPreflight(), { type: 'status-error', error: { code: 'unknown-device', message: 'no' } }, 'failed', 'preflight', ['done']],
    ['poll in preflight asks the device again', inPreflight(), { type: 'timer', name: 'poll' }, 'in_progress', 'preflight', ['rpc-status']],
    ['install accepted → downloading', sent(), { type: 'install-accepted' }, 'in_progress', 'downloading', ['save', 'arm-timer']],
    ['install refused busy → rejected', sent(), { type: 'install-refused', error: { code: 'busy', message: 'waiting' } }, 'rejected', 'preflight', ['done']],
    ['install refused 1342 → rejected', sent(), { type: 'install-refused', error: { code: '1342', message: 'not updatable' } }, 'rejected', 'preflight', ['done']],
    ['install timeout asks the device', sent(), { type: 'install-timeout' }, 'in_progress', 'preflight', ['rpc-status']],
    ['progress moves the phase', accepted(), { type: 'progress', phase: 'verifying', progress: 61 }, 'in_progress', 'verifying', ['save', 'arm-timer']],
    ['progress before the answer proves acceptance', sent(), { type: 'progress', phase: 'downloading', progress: 5 }, 'in_progress', 'downloading', ['save']],
    ['device failure after acceptance fails', accepted(), { type: 'device-failed', error: { code: 'checksum-mismatch', message: 'bad' } }, 'failed', 'downloading', ['done']],
    ['site back online asks the device', accepted('rebooting'), { type: 'site-online' }, 'in_progress', 'rebooting', ['rpc-status']],
    ['device succeeded with new version → succeeded', accepted('rebooting'), { type: 'status', status: status({ version: 'v1.61' }, { state: 'succeeded', phase: 'rebooting', progress: 100 }) }, 'succeeded', 'confirming', ['save', 'done']],
    ['device back on old version → failed', accepted('rebooting'), { type: 'status', status: status({ version: 'v1.57' }, { state: 'succeeded', phase: 'rebooting', progress: 100 }) }, 'failed', 'confirming', ['done']],
    ['device reports failure → failed', accepted('installing'), { type: 'status', status: status({}, { state: 'failed', phase: 'installing', error: { code: 'vbdup-122', message: 'no response' } }) }, 'failed', 'installing', ['done']],
    ['device lost the execution → failed', accepted('installing'), { type: 'status', status: status() }, 'failed', 'installing', ['done']],
    ['status unavailable while rebooting keeps polling', accepted('rebooting'), { type: 'status-timeout' }, 'in_progress', 'rebooting', ['arm-timer']],
    ['poll timer asks the device', accepted('installing'), { type: 'timer', name: 'poll' }, 'in_progress', 'installing', ['rpc-status']],
    ['phase timer after the install asks the device before deciding', accepted('rebooting'), { type: 'timer', name: 'phase' }, 'in_progress', 'rebooting', ['rpc-status']],
    ['total timer after the install asks the device before deciding', accepted('installing'), { type: 'timer', name: 'total' }, 'in_progress', 'installing', ['rpc-status']],
    ['phase timer before the install → timed_out at once', inPreflight(), { type: 'timer', name: 'phase' }, 'timed_out', 'preflight', ['done']],
    ['cancel before the install → canceled', inPreflight(), { type: 'cancel', reason: 'abort' }, 'canceled', 'preflight', ['done']],
    ['cancel after the install was sent is ignored', sent(), { type: 'cancel', reason: 'abort' }, 'in_progress', 'preflight', []],
    ['cancel after acceptance is ignored', accepted(), { type: 'cancel', reason: 'abort' }, 'in_progress', 'downloading', []],
    ['re-attach after acceptance asks the device, never installs', accepted('installing'), { type: 'start' }, 'in_progress', 'installing', ['save', 'arm-timer', 'rpc-status']],
    ['re-attach before the install re-takes the lock', inPreflight(), { type: 'start' }, 'in_progress', 'preflight', ['save', 'acquire-lock']],
    ['re-attach finds the device running our install → adopts it', sent(), { type: 'status', status: status({}, { phase: 'installing', progress: 80 }) }, 'in_progress', 'installing', ['save']],
  ];

  test.each(table)('%s', (_name, rec, event, expectedState, expectedPhase, mustHave) => {
    const t = run(rec, event);
    expect(t.state.record.state).toBe(expectedState);
    expect(t.state.record.phase).toBe(expectedPhase);
    for (const c of mustHave) expect(types(t.commands)).toContain(c);
    if (event.type === 'start' && rec.installAccepted) expect(types(t.commands)).not.toContain('rpc-install');
  });

  test('every save bumps seq and stamps updatedAt', () => {
    const t = run(record(), { type: 'start' });
    const saves = t.commands.filter((c) => c.type === 'save').length;
    expect(saves).toBeGreaterThan(0);
    expect(t.state.record.seq).toBe(1 + saves);
    expect(t.state.record.updatedAt).toBe(new Date(T0).toISOString());
  });

  test('terminal records ignore every event', () => {
    const done = accepted('confirming', { state: 'succeeded' });
    for (const e of [{ type: 'start' }, { type: 'timer', name: 'phase' }, { type: 'device-failed', error: { code: 'x', message: 'y' } }] as MachineEvent[]) {
      const t = run(done, e);
      expect(t.commands).toEqual([]);
      expect(t.state.record).toEqual(done);
    }
  });

  test('a report that skips a phase records the skipped phase in order', () => {
    const t = run(accepted('downloading', { progress: 55 }), { type: 'progress', phase: 'installing', progress: 70 });
    const logged = t.commands.flatMap((c) => (c.type === 'save' && c.event ? [c.event.phase] : []));
    expect(logged).toEqual(['verifying', 'installing']);
    expect(t.state.record).toMatchObject({ phase: 'installing', progress: 70 });
  });

  test('stale progress (older phase or lower percentage) changes nothing', () => {
    const rec = accepted('installing', { progress: 80 });
    expect(run(rec, { type: 'progress', phase: 'downloading', progress: 90 }).commands).not.toContainEqual(expect.objectContaining({ type: 'save' }));
    expect(run(rec, { type: 'progress', phase: 'installing', progress: 70 }).state.record.progress).toBe(80);
    expect(run(rec, { type: 'progress', phase: 'installing', progress: 85 }).state.record.progress).toBe(85);
  });

  test('the install is sent at most MAX_INSTALL_TRIES times when answers are lost', () => {
    const t = run(sent(), { type: 'status', status: status() }, { installTries: MAX_INSTALL_TRIES });
    expect(t.state.record.state).toBe('failed');
    expect(t.state.record.error?.code).toBe('device-unreachable');
    expect(types(t.commands)).not.toContain('rpc-install');
  });

  test('sending the install is persisted before the request goes out', () => {
    const t = run(inPreflight(), { type: 'status', status: status() });
    const saveAt = types(t.commands).indexOf('save');
    const installAt = types(t.commands).indexOf('rpc-install');
    expect(saveAt).toBeGreaterThanOrEqual(0);
    expect(saveAt).toBeLessThan(installAt);
    expect(t.state.record.installSentAt).not.toBeNull();
    expect(t.state.record.fromVersion).toBe('v1.57');
  });

  test('re-attach arms only the remaining phase and total time', () => {
    const rec = accepted('installing', { phaseStartedAt: new Date(T0 - 1500).toISOString(), startedAt: new Date(T0 - 10_000).toISOString() });
    const t = run(rec, { type: 'start' });
    const timers = t.commands.filter((c): c is Extract<Command, { type: 'arm-timer' }> => c.type === 'arm-timer');
    expect(timers).toContainEqual({ type: 'arm-timer', name: 'phase', ms: 4000 - 1500 });
    expect(timers).toContainEqual({ type: 'arm-timer', name: 'total', ms: 60_000 - 10_000 });
    expect(t.state.record.attempt).toBe(rec.attempt + 1);
  });

  test('an unreachable device fails after MAX_PREFLIGHT_STATUS_TRIES tries with doubling pauses', () => {
    let st = initialState(inPreflight());
    const pauses: number[] = [];
    for (let i = 0; i < MAX_PREFLIGHT_STATUS_TRIES; i++) {
      const t = transition(st, { type: 'status-timeout' }, ctx);
      expect(t.state.record.state).toBe('in_progress');
      pauses.push((t.commands.find((c) => c.type === 'arm-timer') as { ms: number }).ms);
      st = t.state;
    }
    expect(pauses).toEqual(pauses.map((_, i) => ctx.pollMs * 2 ** i));
    const last = transition(st, { type: 'status-timeout' }, ctx);
    expect(last.state.record.state).toBe('failed');
    expect(last.state.record.error?.code).toBe('device-unreachable');
  });

  test('timeout codes name the phase', () => {
    expect(run(accepted('rebooting'), { type: 'status-timeout' }, { timeoutCheck: 'phase' }).state.record.error?.code).toBe('timeout-rebooting');
    expect(run(accepted('downloading'), { type: 'status-timeout' }, { timeoutCheck: 'total' }).state.record.error?.code).toBe('timeout');
  });

  describe('a timeout after the install is checked against the device', () => {
    const fire = (rec: ExecutionRecord, name: 'phase' | 'total') => run(rec, { type: 'timer', name }).state;
    test('no answer → timed_out', () => {
      const st = fire(accepted('installing'), 'phase');
      expect(st.timeoutCheck).toBe('phase');
      const t = transition(st, { type: 'status-timeout' }, ctx);
      expect(t.state.record).toMatchObject({ state: 'timed_out', error: { code: 'timeout-installing' } });
    });
    test('device still in the same phase → timed_out', () => {
      const t = transition(fire(accepted('installing', { progress: 70 }), 'phase'), { type: 'status', status: status({}, { phase: 'installing', progress: 75 }) }, ctx);
      expect(t.state.record.state).toBe('timed_out');
    });
    test('device moved on to a later phase (a worker was away) → continues with a fresh phase timer', () => {
      const t = transition(fire(accepted('downloading'), 'phase'), { type: 'status', status: status({}, { phase: 'installing', progress: 80 }) }, ctx);
      expect(t.state.record).toMatchObject({ state: 'in_progress', phase: 'installing', progress: 80 });
      expect(t.commands).toContainEqual({ type: 'arm-timer', name: 'phase', ms: ctx.timeouts.installingMs });
      expect(t.state.timeoutCheck).toBeNull();
    });
    test('device already back on the new version → succeeded, even at the total limit', () => {
      const t = transition(fire(accepted('rebooting'), 'total'), { type: 'status', status: status({ version: 'v1.61' }, { state: 'succeeded', phase: 'rebooting', progress: 100 }) }, ctx);
      expect(t.state.record.state).toBe('succeeded');
    });
    test('install sent but the device never heard of it → timed_out, no second install', () => {
      const t = transition(fire(sent(), 'phase'), { type: 'status', status: status() }, ctx);
      expect(t.state.record.state).toBe('timed_out');
      expect(types(t.commands)).not.toContain('rpc-install');
    });
  });

  test('a re-attaching worker looks twice before sending an install another worker already sent', () => {
    const first = run(sent(), { type: 'status', status: status() });
    expect(types(first.commands)).toEqual(['arm-timer']);
    expect(first.state.installTries).toBe(1);
    const second = transition(first.state, { type: 'status', status: status() }, ctx);
    expect(types(second.commands)).toContain('rpc-install');
  });
});

describe('retries of transient failures before the point of no return', () => {
  const withRetry: MachineContext = { ...ctx, retry: { maxAttempts: 3, backoffMs: 1000 } };
  const go = (rec: ExecutionRecord, event: MachineEvent, extra: Partial<MachineState> = {}) =>
    transition({ ...initialState(rec), ...extra }, event, withRetry);
  const offline = { code: 'device-offline', message: 'not on the bus' };

  // [name, record, event, extra machine state, expected state, expected retries, expected error code]
  const table: [string, ExecutionRecord, MachineEvent, Partial<MachineState>, ExecutionRecord['state'], number, string | null][] = [
    ['preflight timeout before the install → re-queued', inPreflight(), { type: 'timer', name: 'phase' }, {}, 'queued', 1, 'timeout-preflight'],
    ['preflight timeout after the install was sent (device silent) → timed_out, never retried', sent(), { type: 'status-timeout' }, { timeoutCheck: 'phase' }, 'timed_out', 0, 'timeout-preflight'],
    ['unreachable after every status try → re-queued', inPreflight(), { type: 'status-timeout' }, { statusTries: MAX_PREFLIGHT_STATUS_TRIES }, 'queued', 1, 'device-unreachable'],
    ['product off the bus after every status try → re-queued', inPreflight(), { type: 'status-error', error: offline }, { statusTries: MAX_PREFLIGHT_STATUS_TRIES }, 'queued', 1, 'device-offline'],
    ['unknown device is permanent', inPreflight(), { type: 'status-error', error: { code: 'unknown-device', message: 'no' } }, {}, 'failed', 0, 'unknown-device'],
    ['install refused, device offline → re-queued', sent(), { type: 'install-refused', error: offline }, { installTries: 1 }, 'queued', 1, 'device-offline'],
    ['install refused offline after two sends (one may have landed) → rejected', sent(), { type: 'install-refused', error: offline }, { installTries: 2 }, 'rejected', 0, 'device-offline'],
    ['install refused 1342 (not updatable) is permanent', sent(), { type: 'install-refused', error: { code: '1342', message: 'not updatable' } }, { installTries: 1 }, 'rejected', 0, '1342'],
    ['install refused busy stays device-busy, rejected', sent(), { type: 'install-refused', error: { code: 'busy', message: 'waiting for a task' } }, { installTries: 1 }, 'rejected', 0, 'device-busy'],
    ['the device updating in another execution → rejected device-busy, not retried', inPreflight(), { type: 'lock-denied', holder: 'jother.x', scope: 'device' }, {}, 'rejected', 0, 'device-busy'],
    ['another device of the site updating (GX or product) → re-queued site-busy', inPreflight(), { type: 'lock-denied', holder: 'jother.x', scope: 'site' }, {}, 'queued', 1, 'site-busy'],
    ['a busy site on the last attempt still waits: a wait is not an attempt', inPreflight({ retries: 2 }), { type: 'lock-denied', holder: 'jother.x', scope: 'site' }, {}, 'queued', 3, 'site-busy'],
    ['a transient failure after site waits has the attempts the waits did not use', inPreflight({ retries: 4, siteWaits: 4 }), { type: 'timer', name: 'phase' }, {}, 'queued', 5, 'timeout-preflight'],
    ['the attempts count without the site waits', inPreflight({ retries: 6, siteWaits: 4 }), { type: 'timer', name: 'phase' }, {}, 'timed_out', 6, 'timeout-preflight'],
    ['the last attempt finishes', inPreflight({ retries: 2 }), { type: 'timer', name: 'phase' }, {}, 'timed_out', 2, 'timeout-preflight'],
    ['a failure after acceptance is never retried', accepted(), { type: 'device-failed', error: { code: 'download-failed', message: 'dropped' } }, {}, 'failed', 0, 'download-failed'],
    ['a phase timeout after acceptance is never retried', accepted('downloading'), { type: 'status-timeout' }, { timeoutCheck: 'phase' }, 'timed_out', 0, 'timeout-downloading'],
    ['the total timeout is never retried', inPreflight(), { type: 'timer', name: 'total' }, {}, 'timed_out', 0, 'timeout'],
  ];

  test.each(table)('%s', (_name, rec, event, extra, state, retries, code) => {
    const t = go(rec, event, extra);
    expect(t.state.record.state).toBe(state);
    expect(t.state.record.retries ?? 0).toBe(retries);
    expect(t.state.record.error?.code ?? null).toBe(code);
    expect(types(t.commands)).toEqual(expect.arrayContaining(['save', 'clear-timers', 'done']));
    if (state === 'queued') {
      expect(t.state.record).toMatchObject({ phase: null, installSentAt: null, installAccepted: false, progress: 0, finishedAt: null });
      expect(types(t.commands)).not.toContain('rpc-install');
    }
  });

  test('the backoff doubles per retry and is recorded as retryAt', () => {
    const first = go(inPreflight(), { type: 'timer', name: 'phase' });
    expect(first.state.record.retryAt).toBe(new Date(T0 + 1000).toISOString());
    const second = go(inPreflight({ retries: 1 }), { type: 'timer', name: 'phase' });
    expect(second.state.record.retryAt).toBe(new Date(T0 + 2000).toISOString());
    const save = second.commands.find((c) => c.type === 'save') as Extract<Command, { type: 'save' }>;
    expect(save.event).toMatchObject({ level: 'warn', state: 'queued', message: expect.stringContaining('attempt 2 of 3') });
  });

  describe('a busy site is waited for, bounded by the total timeout', () => {
    const busy: MachineEvent = { type: 'lock-denied', holder: 'jother.x', scope: 'site' };
    const saved = (t: ReturnType<typeof go>) => t.commands.find((c) => c.type === 'save') as Extract<Command, { type: 'save' }>;

    test('the first wait records when the site was found busy, at the job backoff, logged as info', () => {
      const t = go(inPreflight(), busy);
      expect(t.state.record).toMatchObject({ state: 'queued', retries: 1, siteWaits: 1, siteBusySince: new Date(T0).toISOString(), retryAt: new Date(T0 + 1000).toISOString() });
      expect(saved(t).event).toMatchObject({ level: 'info', message: expect.stringContaining('waiting for the site (site-busy): execution jother.x') });
    });

    test('the pause doubles up to SITE_WAIT_MAX_DELAY_MS and the first look is kept', () => {
      const since = new Date(T0 - 5000).toISOString();
      const third = go(inPreflight({ retries: 2, siteWaits: 2, siteBusySince: since }), busy);
      expect(third.state.record).toMatchObject({ siteWaits: 3, siteBusySince: since, retryAt: new Date(T0 + 4000).toISOString() });
      // The record is saved (and published) on every look; the log only at the first and every tenth.
      expect(saved(third).event).toBeNull();
      const tenth = go(inPreflight({ retries: 9, siteWaits: SITE_WAIT_LOG_EVERY - 1, siteBusySince: since }), busy);
      expect(saved(tenth).event).toMatchObject({ level: 'info', message: expect.stringContaining('still waiting for the site (site-busy) after 5 s') });
      const late = transition(initialState(inPreflight({ retries: 20, siteWaits: 20, siteBusySince: since })), busy, { ...withRetry, timeouts: { ...ctx.timeouts, totalMs: 3600_000 } });
      expect(late.state.record.retryAt).toBe(new Date(T0 + SITE_WAIT_MAX_DELAY_MS).toISOString());
    });

    test('the last look is at the end of the total timeout, and a site still busy then rejects', () => {
      const nearEnd = go(inPreflight({ retries: 9, siteWaits: 9, siteBusySince: new Date(T0 - 59_500).toISOString() }), busy);
      expect(nearEnd.state.record.retryAt).toBe(new Date(T0 + 500).toISOString());
      const t = go(inPreflight({ retries: 10, siteWaits: 10, siteBusySince: new Date(T0 - 60_000).toISOString() }), busy);
      expect(t.state.record).toMatchObject({ state: 'rejected', error: { code: 'site-busy', message: expect.stringContaining('stayed busy for 60 s') } });
      expect(types(t.commands)).toEqual(expect.arrayContaining(['clear-timers', 'done']));
    });

    test('a retry after a transient failure starts the next wait afresh', () => {
      const t = go(inPreflight({ retries: 1, siteWaits: 1, siteBusySince: new Date(T0 - 50_000).toISOString() }), { type: 'timer', name: 'phase' });
      expect(t.state.record).toMatchObject({ state: 'queued', siteBusySince: null, siteWaits: 1 });
    });

    test('without a retry policy a busy site is waited for at the default backoff', () => {
      expect(run(inPreflight(), busy).state.record).toMatchObject({ state: 'queued', siteWaits: 1, retryAt: new Date(T0 + DEFAULT_RETRY_POLICY.backoffMs).toISOString() });
    });
  });

  test('without a retry policy a transient failure finishes as before', () => {
    expect(run(inPreflight(), { type: 'timer', name: 'phase' }).state.record.state).toBe('timed_out');
    expect(run(sent(), { type: 'install-refused', error: offline }, { installTries: 1 }).state.record.state).toBe('rejected');
  });

  test('a retried execution starts fresh: error and retryAt cleared, retries kept', () => {
    const requeued = record({ state: 'queued', seq: 5, attempt: 1, retries: 1, retryAt: new Date(T0).toISOString(), error: offline });
    const t = go(requeued, { type: 'start' });
    expect(t.state.record).toMatchObject({ state: 'in_progress', phase: 'preflight', error: null, retryAt: null, retries: 1, attempt: 2 });
    expect(types(t.commands)).toContain('acquire-lock');
  });
});
