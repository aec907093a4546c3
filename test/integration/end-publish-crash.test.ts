/**
 * A worker killed after storing an execution's end, while the status publishes of that end are still
 * on their way to the broker, must not take them with it: the queue job stays the worker's until the
 * broker has acknowledged them, so the worker taking it over publishes the end again. Separate OS
 * processes on a private Redis (one api,broker, two workers); worker 1 reaches the broker through a
 * proxy that never delivers its publishes of ended device records, worker 2 starts once worker 1 is dead.
 */
import type { Fleet } from '../../devices-sim/index.js';
import { isTerminalExecutionState, parseFleetflashTopic, type ExecutionRecord, type JobRecord } from '../../src/protocol/index.js';
import { startHoldingProxy, type HoldingProxy } from '../helpers/holding-proxy.js';
import { SMARTSOLAR } from '../helpers/api-fixtures.js';
import { startScaleDeployment, type ScaleDeployment } from '../helpers/scale-deployment.js';
import { waitFor } from '../helpers/service-harness.js';
import { StatusWatcher } from '../helpers/status-watcher.js';

let proxy: HoldingProxy;
let d: ScaleDeployment;
let fleet: Fleet | undefined;
let watcher: StatusWatcher | undefined;

beforeAll(async () => {
  proxy = await startHoldingProxy((p) => {
    if (parseFleetflashTopic(p.topic)?.kind !== 'job-device') return false;
    return isTerminalExecutionState((JSON.parse(p.payload.toString()) as ExecutionRecord).state);
  });
  d = await startScaleDeployment({
    apis: 1,
    workers: 2,
    workerEnv: (i, apis): Record<string, string> => (i === 0 ? { MQTT_URL: proxy.forward(apis[0].mqttPort) } : {}),
  });
  // Worker 2 waits in the wings: it takes over only once worker 1 is dead.
  await d.workers[1].proc.stop();
}, 80_000);

afterAll(async () => {
  await watcher?.close();
  await fleet?.stop();
  await d?.close();
  await proxy?.close();
}, 60_000);

test('a worker killed before the broker acknowledged an execution end: the worker taking over publishes it', async () => {
  const [api] = d.apis;
  const image = await d.uploadImage(api, SMARTSOLAR);
  const connected = await d.connectSolarFleet(api, { sites: 1, solarPerSite: 3, seed: 3, salt: 'end-publish', timeScale: 1000 });
  fleet = connected.fleet;
  const devices = connected.solar;
  expect(devices).toHaveLength(3);

  const { job } = await d.call<{ job: JobRecord }>(api, 'POST', '/api/jobs', { firmwareId: image.id, devices });
  watcher = await StatusWatcher.connect(api.base, d.viewerToken, job.id);
  const ended = await waitFor(async () => {
    const r = await d.call<{ job: JobRecord; executions: ExecutionRecord[] }>(api, 'GET', `/api/jobs/${job.id}`);
    return r.job.state === 'completed' ? r.executions : null;
  }, 30_000, 'every execution to end in the store');
  expect(ended.map((e) => e.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  // Every end was stored by worker 1 and its publish held on the way: the browser is still behind.
  await waitFor(() => proxy.held.length === devices.length, 5000, 'the ends held on the link');
  for (const id of devices) expect(isTerminalExecutionState(watcher.latest.get(id)?.state ?? 'queued')).toBe(false);

  await d.workers[0].proc.kill('SIGKILL');
  await d.workers[1].proc.start(60_000);

  // Worker 2 takes the stalled queue jobs over and publishes the ends worker 1 could not.
  const bySeq = new Map(ended.map((e) => [e.deviceId, e]));
  await waitFor(() => devices.every((id) => watcher!.latest.get(id)?.seq === bySeq.get(id)!.seq), 20_000, 'the ends at the browser');
  for (const id of devices) expect(watcher.latest.get(id)).toMatchObject({ state: 'succeeded', progress: 100, seq: bySeq.get(id)!.seq });
}, 120_000);
