/**
 * The embedded broker in a process of its own (`ROLE=broker`) and the api and worker roles in another
 * pointed at it (`MQTT_URL`, `MQTT_BROWSER_URL`): sites, the worker and browsers all go through that
 * one broker, browsers over WebSocket at `/mqtt` on its `PORT`, where a load balancer's probes are
 * answered too.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { parseConfig } from '../../src/config.js';
import { LISTEN_BACKLOG } from '../../src/net/listen-backlog.js';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { startService, type Service } from '../../src/service/service.js';
import { deleteKeys } from '../helpers/redis-keys.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';
import { StatusWatcher } from '../helpers/status-watcher.js';

describe('the broker role in a process of its own', () => {
  const shared = {
    QUEUE_PREFIX: `t${randomBytes(4).toString('hex')}`,
    SIGNING_SECRET: randomBytes(32).toString('hex'),
    MQTT_SERVICE_PASSWORD: randomBytes(16).toString('hex'),
  };
  let broker: Service;
  let brokerHttp: string;
  let h: Harness;
  let dir: string;

  /** A `ROLE=broker` process's service on these ports (0: any free one). */
  const startBroker = (port: string, mqttPort: string) =>
    startService(
      parseConfig({
        ...shared,
        ROLE: 'broker',
        PORT: port,
        MQTT_PORT: mqttPort,
        HOST: '127.0.0.1',
        FIRMWARE_DIR: dir,
        LOG_LEVEL: 'silent',
      }),
      pino({ level: 'silent' }),
    );

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ff-broker-apart-'));
    broker = await startBroker('0', '0');
    brokerHttp = `http://127.0.0.1:${broker.httpPort}`;
    h = await startHarness({
      env: {
        ...shared,
        ROLE: 'api,worker',
        MQTT_URL: broker.mqttUrl,
        MQTT_BROWSER_URL: `ws://127.0.0.1:${broker.httpPort}/mqtt`,
      },
    });
  }, 60_000);

  afterAll(async () => {
    await h?.close();
    await broker?.close();
    const redis = new Redis('redis://127.0.0.1:6379');
    await deleteKeys(redis, `${shared.QUEUE_PREFIX}:*`);
    await redis.quit();
    await rm(dir, { recursive: true, force: true });
  });

  /** Launches a job updating `devices` (of one product) to the seeded image; its id. */
  const launch = async (devices: { deviceId: string; productId: number }[]) => {
    const res = await h.api('/api/jobs', {
      method: 'POST',
      json: { firmwareId: h.image(devices[0].productId).id, devices: devices.map((d) => d.deviceId) },
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { job: JobRecord }).job.id;
  };

  test('an update runs through it, and a browser follows the job over its WebSocket', async () => {
    expect(h.service.broker).toBeNull();
    expect(broker.httpUrl).toBeNull();
    const fleet = await h.addFleet({
      sites: 2,
      salt: 'apart',
      mix: { vebus: 0, solarcharger: 1, battery: 0 },
    });
    const solar = fleet.devices().filter((d) => d.service === 'solarcharger');
    const jobId = await launch(solar);

    const watcher = await StatusWatcher.connect(h.base, h.viewerToken, jobId);
    try {
      expect(watcher.url).toBe(`ws://127.0.0.1:${broker.httpPort}`);
      await waitFor(
        () => watcher.job?.state === 'completed',
        30_000,
        'the completed job summary at the browser',
      );
      expect(watcher.job!.counts.succeeded).toBe(solar.length);
      for (const d of solar) expect(watcher.latest.get(d.deviceId)?.state).toBe('succeeded');
    } finally {
      await watcher.close();
    }
    for (const d of solar)
      expect(fleet.devices().find((x) => x.deviceId === d.deviceId)?.version).toBe(
        h.image(d.productId).version,
      );
  }, 60_000);

  test('its WebSocket refuses a browser without valid credentials', async () => {
    const refused = await mqtt
      .connectAsync(`ws://127.0.0.1:${broker.httpPort}/mqtt`, {
        clientId: 'web-nobody-1',
        username: 'nobody',
        password: 'wrong',
        reconnectPeriod: 0,
      })
      .then(
        async (c) => (await c.endAsync(), null),
        (err: Error) => err.message,
      );
    expect(refused).toMatch(/Bad username or password|Not authorized/);
  });

  test('its HTTP port answers the probes and nothing else', async () => {
    expect((await fetch(`${brokerHttp}/healthz`)).status).toBe(200);
    const ready = await fetch(`${brokerHttp}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ok: true, checks: { redis: true, mqtt: true } });
    expect((await fetch(`${brokerHttp}/api/jobs`)).status).toBe(404);
    expect((await fetch(`${brokerHttp}/healthz`, { method: 'POST' })).status).toBe(405);
  });

  test('its HTTP port keeps as long an accept queue as the api port (every open portal reconnects at once after a restart)', async () => {
    const somaxconn = Number((await readFile('/proc/sys/net/core/somaxconn', 'utf8')).trim());
    expect(await acceptQueue(broker.httpPort)).toBe(Math.min(LISTEN_BACKLOG, somaxconn));
    expect(await acceptQueue(h.service.httpPort)).toBe(Math.min(LISTEN_BACKLOG, somaxconn));
  });

  test('a restart of the broker process mid-update: the update goes on, and a page opened afterwards gets every job back', async () => {
    const fleet = await h.addFleet({
      sites: 2,
      salt: 'apart-restart',
      mix: { vebus: 0, solarcharger: 1, battery: 0 },
      // ~4 s per update: the restart falls inside the second job's.
      timeScale: 20,
    });
    const [early, late] = fleet.devices().filter((d) => d.service === 'solarcharger');
    const jobOf = async (jobId: string) =>
      (await (await h.api(`/api/jobs/${jobId}`)).json()) as { job: JobRecord; executions: ExecutionRecord[] };

    // One job finished before the restart: its records exist only in the old broker's memory and Redis.
    const first = await launch([early]);
    await waitFor(async () => (await jobOf(first)).job.state === 'completed', 30_000, 'the first job');
    const second = await launch([late]);
    await waitFor(
      async () => (await jobOf(second)).executions[0]?.installAccepted === true,
      30_000,
      'the second update started on its device',
    );

    const { httpPort, mqttPort } = broker;
    await broker.close();
    broker = await startBroker(String(httpPort), String(mqttPort));

    const done = await waitFor(
      async () => {
        const r = await jobOf(second);
        return r.job.state === 'completed' ? r : null;
      },
      40_000,
      'the second job',
    );
    expect(done.executions[0].state).toBe('succeeded');
    expect(fleet.devices().find((d) => d.deviceId === late.deviceId)?.version).toBe(
      h.image(late.productId).version,
    );
    // The new broker started empty; the api put the stored state back (retained-restorer.ts).
    for (const [jobId, device] of [
      [first, early],
      [second, late],
    ] as const) {
      const watcher = await StatusWatcher.connect(h.base, h.viewerToken, jobId);
      try {
        await waitFor(
          () =>
            watcher.job?.state === 'completed' && watcher.latest.get(device.deviceId)?.state === 'succeeded',
          10_000,
          `job ${jobId}'s records at a page opened after the restart`,
        );
      } finally {
        await watcher.close();
      }
    }
  }, 90_000);
});

/** The accept queue the kernel keeps for a port listening on 127.0.0.1 (`ss`: a LISTEN socket's Send-Q). */
async function acceptQueue(port: number | null): Promise<number> {
  const { stdout } = await promisify(execFile)('ss', ['-ltnH', `sport = :${port}`]);
  // State, Recv-Q, Send-Q, local address, peer address.
  return Number(stdout.trim().split(/\s+/)[2]);
}
