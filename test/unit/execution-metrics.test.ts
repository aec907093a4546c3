/** The pure part of the execution metrics: which measurements one (previous, next) save yields. */
import { observe } from '../../src/metrics/execution-metrics.js';
import type { ExecutionRecord } from '../../src/protocol/index.js';

const T0 = '2026-01-01T00:00:00.000Z';
const at = (s: number) => new Date(Date.parse(T0) + s * 1000).toISOString();

function rec(over: Partial<ExecutionRecord>): ExecutionRecord {
  return {
    executionId: 'j1.c0619ab1d2e3.solarcharger.256',
    jobId: 'j1',
    deviceId: 'c0619ab1d2e3.solarcharger.256',
    state: 'in_progress',
    phase: 'preflight',
    progress: 0,
    fromVersion: 'v1.56',
    toVersion: 'v1.57',
    error: null,
    attempt: 1,
    seq: 1,
    installSentAt: null,
    installAccepted: false,
    phaseStartedAt: at(0),
    createdAt: at(0),
    startedAt: at(0),
    updatedAt: at(0),
    finishedAt: null,
    ...over,
  };
}

test.each<[string, Partial<ExecutionRecord>, Partial<ExecutionRecord>, ReturnType<typeof observe>]>([
  ['queued → in_progress counts the state, no phase ended', { state: 'queued', phase: null, phaseStartedAt: null }, { state: 'in_progress', phase: 'preflight', phaseStartedAt: at(0) }, [{ kind: 'state', state: 'in_progress', errorCode: 'none' }]],
  [
    'a phase change measures the phase that ended',
    {},
    { phase: 'downloading', phaseStartedAt: at(4), updatedAt: at(4) },
    [{ kind: 'phase', phase: 'preflight', outcome: 'completed', seconds: 4 }],
  ],
  ['progress within a phase measures nothing', { phase: 'downloading' }, { phase: 'downloading', progress: 40, updatedAt: at(9) }, []],
  [
    'success ends the last phase and the execution',
    { phase: 'confirming', phaseStartedAt: at(50) },
    { state: 'succeeded', phase: null, updatedAt: at(52), finishedAt: at(52) },
    [
      { kind: 'state', state: 'succeeded', errorCode: 'none' },
      { kind: 'phase', phase: 'confirming', outcome: 'completed', seconds: 2 },
      { kind: 'execution', state: 'succeeded', seconds: 52 },
    ],
  ],
  [
    'a failure carries its error code and names the phase it failed in',
    { phase: 'installing', phaseStartedAt: at(10) },
    { state: 'failed', phase: 'installing', error: { code: 'vbdup-122', message: 'no response' }, updatedAt: at(30), finishedAt: at(30) },
    [
      { kind: 'state', state: 'failed', errorCode: 'vbdup-122' },
      { kind: 'phase', phase: 'installing', outcome: 'failed', seconds: 20 },
      { kind: 'execution', state: 'failed', seconds: 30 },
    ],
  ],
  [
    'a re-queue for retry is a state change and a phase ending in retry',
    { phase: 'preflight' },
    { state: 'queued', phase: null, updatedAt: at(3) },
    [
      { kind: 'state', state: 'queued', errorCode: 'none' },
      { kind: 'phase', phase: 'preflight', outcome: 'retry', seconds: 3 },
    ],
  ],
])('%s', (_name, prev, next, expected) => {
  const previous = rec(prev);
  expect(observe(previous, { ...previous, ...next })).toEqual(expected);
});
