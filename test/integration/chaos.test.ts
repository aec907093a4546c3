/**
 * The chaos run in short form (the full one is `npm run chaos`): real processes, workers killed with
 * SIGKILL mid-update, the broker and Redis restarted, and the api,broker process killed while it aborts
 * a job. Nothing accepted may be lost, no device may get a second install for one execution, a canceled
 * execution's device must never have been sent its install, and "succeeded" must mean the device
 * really runs the new image.
 */
import { runChaos, type ChaosReport } from '../../scripts/lib/chaos.js';

let report: ChaosReport;

beforeAll(async () => {
  report = await runChaos({
    sites: 25,
    workers: 2,
    workerKills: 2,
    restartBroker: true,
    restartRedis: true,
    abortMidway: true,
    timeScale: 10,
    seed: 11,
    faults: { checksumMismatch: 0.03, notUpdatable: 0.03, dropMidDownload: 0.05, returnsOldVersion: 0.03 },
    timeoutMs: 180_000,
  });
}, 400_000);

test('every accepted execution reaches a terminal state; none is lost', () => {
  expect(report.executions).toBeGreaterThan(90);
  expect(report.lost).toBe(0);
  expect(report.terminal).toBe(report.executions);
  expect(report.stuck).toEqual([]);
});

test('no device ever received a second install request, or started a second update, for one execution', () => {
  // A QoS 1 redelivery of the same request (same RPC id, after a broker restart) is not a second
  // request: the device answers it as a duplicate. Anything else is listed here.
  expect(report.repeated).toEqual([]);
  expect(report.repeatedInstalls).toBe(0);
});

test('executions marked succeeded are exactly the devices that really run the new version', () => {
  expect(report.mismatches).toEqual([]);
  expect(report.succeeded).toBe(report.onNewVersion);
  expect(report.succeeded).toBeGreaterThan(0);
});

test('an abort cut short by the death of its process still holds: the rest canceled, none of them sent its install', () => {
  expect(report.aborted).not.toBeNull();
  const { byState, canceledBeforeKill } = report.aborted!;
  const total = Object.values(byState).reduce((a, b) => a + b, 0);
  // Held back two at a time, most of the job was still waiting: canceled by the abort or, after its
  // process died, by the worker refused by the store or the rollout controller.
  expect(byState.canceled ?? 0).toBeGreaterThan(total / 2);
  expect(byState.canceled ?? 0).toBeGreaterThanOrEqual(canceledBeforeKill);
  expect(byState.queued ?? 0).toBe(0);
  expect(byState.in_progress ?? 0).toBe(0);
  expect(report.canceledButInstalled).toEqual([]);
});

test('the chaos really happened, and every interrupted execution was taken over', () => {
  expect(report.actions.map((a) => a.action.split(' ')[0])).toEqual(expect.arrayContaining(['SIGKILL', 'restart-broker', 'restart-redis', 'abort']));
  for (const a of report.actions) expect(a.recoveryMs === null || a.recoveryMs >= 0).toBe(true);
});

test('GX and product jobs launched over the same sites took turns per site: waits, none rejected for a busy site', () => {
  expect(report.siteWaits.waits).toBeGreaterThan(0);
  expect(report.siteWaits.executions).toBeGreaterThan(0);
  expect(report.byError['site-busy'] ?? 0).toBe(0);
});
