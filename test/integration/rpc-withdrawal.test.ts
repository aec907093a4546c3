/**
 * An install request the worker gave up on never reaches the device later. The worker (its own OS
 * process) reaches the broker through a proxy that keeps its first install request from the broker,
 * then the link is cut: the request stays unacknowledged in mqtt.js' store, the execution times out
 * while the worker is offline, and the link comes back. mqtt.js would send the stored request again
 * on reconnect, and the device would start an update that no execution supervises any more.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Fleet } from '../../devices-sim/index.js';
import { isTerminalExecutionState, type ExecutionRecord, type JobRecord } from '../../src/protocol/index.js';
import { startHoldingProxy, type HoldingProxy } from '../helpers/holding-proxy.js';
import { SMARTSOLAR } from '../helpers/api-fixtures.js';
import { startScaleDeployment, type ScaleDeployment } from '../helpers/scale-deployment.js';
import { waitFor } from '../helpers/service-harness.js';

let holding = true;
let proxy: HoldingProxy;
let d: ScaleDeployment;
let fleet: Fleet | undefined;

beforeAll(async () => {
  proxy = await startHoldingProxy(
    (p) => holding && p.topic.startsWith('P/') && (JSON.parse(p.payload.toString()) as { method?: string }).method === 'firmware.install',
  );
  d = await startScaleDeployment({
    apis: 1,
    workers: 1,
    env: { RPC_TIMEOUT_MS: '500' },
    workerEnv: (_i, apis): Record<string, string> => ({ MQTT_URL: proxy.forward(apis[0].mqttPort) }),
  });
}, 80_000);

afterAll(async () => {
  await fleet?.stop();
  await d?.close();
  await proxy?.close();
}, 60_000);

async function execution(jobId: string): Promise<ExecutionRecord> {
  const { executions } = await d.call<{ executions: ExecutionRecord[] }>(d.apis[0], 'GET', `/api/jobs/${jobId}`);
  return executions[0];
}

test('an install request still unacknowledged when the worker gave up is not sent after the reconnect', async () => {
  const [api] = d.apis;
  const image = await d.uploadImage(api, SMARTSOLAR);
  fleet = (await d.connectSolarFleet(api, { sites: 1, solarPerSite: 2, seed: 5, salt: 'rpc-withdrawal', timeScale: 1000 })).fleet;
  const [first, second] = fleet.devices().filter((x) => x.productId === SMARTSOLAR);
  const versionBefore = first.version;

  const { job } = await d.call<{ job: JobRecord }>(api, 'POST', '/api/jobs', {
    firmwareId: image.id,
    devices: [first.deviceId],
    timeouts: { preflightMs: 1500 },
  });
  await waitFor(() => proxy.held.length === 1, 15_000, 'the install request on the link');
  proxy.cut();
  const ended = await waitFor(async () => {
    const e = await execution(job.id);
    return isTerminalExecutionState(e.state) ? e : null;
  }, 20_000, 'the execution to end while the worker is offline');
  expect(ended).toMatchObject({ state: 'timed_out', installAccepted: false });
  expect(ended.installSentAt).not.toBeNull();

  // The link is back: a job on the site's other charger runs through it to its end.
  holding = false;
  proxy.forward(api.mqttPort);
  const { job: next } = await d.call<{ job: JobRecord }>(api, 'POST', '/api/jobs', { firmwareId: image.id, devices: [second.deviceId] });
  expect(await waitFor(async () => {
    const e = await execution(next.id);
    return isTerminalExecutionState(e.state) ? e.state : null;
  }, 30_000, 'the second job to end')).toBe('succeeded');

  // The first device never got the install the timed-out execution had sent.
  expect(fleet.truth.requestCount(first.deviceId, ended.executionId)).toBe(0);
  expect(fleet.truth.acceptedCount(first.deviceId, ended.executionId)).toBe(0);
  expect(fleet.devices().find((x) => x.deviceId === first.deviceId)?.version).toBe(versionBefore);
  const workerLog = await readFile(path.join(d.logDir, 'worker-1.log'), 'utf8');
  expect(workerLog).toContain('rpc request withdrawn unacknowledged');
}, 120_000);
