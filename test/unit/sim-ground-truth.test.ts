/**
 * The simulator's ground truth decides what counts as an install repeated: a device starting an update
 * twice for one execution, or getting the install again after it started, never an install sent again
 * before the device had accepted any (what a worker re-attaching after one that died with the answer does).
 */
import { GroundTruth, type InstallRequestRecord } from '../../devices-sim/ground-truth.js';

const DEVICE = 'c0619ab1d2e3.solarcharger.256';
const EXECUTION = 'j1.c0619ab1d2e3.solarcharger.256';

type Install = [rpcId: string, outcome: InstallRequestRecord['outcome']];

function truthWith(installs: readonly Install[]): GroundTruth {
  const truth = new GroundTruth(() => []);
  installs.forEach(([rpcId, outcome], i) =>
    truth.recordInstall(DEVICE, { executionId: EXECUTION, jobId: 'j1', rpcId, at: 1_000 + i, outcome, code: outcome === 'refused' ? 'x' : null }),
  );
  return truth;
}

const cases: [what: string, installs: Install[], expected: { requests: number; accepted: number; afterStart: number }][] = [
  ['refused twice (the first answer lost with its worker)', [['r1', 'refused'], ['r2', 'refused']], { requests: 2, accepted: 0, afterStart: 0 }],
  ['refused, then accepted when sent again', [['r1', 'refused'], ['r2', 'accepted']], { requests: 2, accepted: 1, afterStart: 0 }],
  ['accepted, and the same request redelivered by MQTT', [['r1', 'accepted'], ['r1', 'duplicate']], { requests: 1, accepted: 1, afterStart: 0 }],
  ['accepted, then sent again: a repeat', [['r1', 'accepted'], ['r2', 'duplicate']], { requests: 2, accepted: 1, afterStart: 1 }],
  ['accepted, refused, sent a third time: two repeats', [['r1', 'accepted'], ['r2', 'refused'], ['r3', 'duplicate'], ['r3', 'duplicate']], { requests: 3, accepted: 1, afterStart: 2 }],
];

test.each(cases)('%s', (_what, installs, expected) => {
  const truth = truthWith(installs);
  expect({
    requests: truth.requestCount(DEVICE, EXECUTION),
    accepted: truth.acceptedCount(DEVICE, EXECUTION),
    afterStart: truth.requestsAfterStart(DEVICE, EXECUTION),
  }).toEqual(expected);
  expect(truth.requestsAfterStart(DEVICE, 'another-execution')).toBe(0);
});
