/**
 * What a firmware download costs the process that serves it (the api role, with the embedded broker
 * as deployed): the real service on a Redis of its own, one image uploaded through the API, then
 * rounds of downloads with valid tokens, each on a new connection as devices make them, many at a
 * time. Prints the service's CPU microseconds per download (median and spread of the rounds after a
 * warm-up round) and one JSON line. Every download is checked: status 200 and the image's length.
 *
 *   npm run bench:download -- [--downloads 5000] [--rounds 5] [--concurrency 200] [--size-kb 128]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { TokenSigner } from '../src/auth/tokens.js';
import { procSample } from './lib/bench-proc.js';
import { formatSpread, round, spread } from './lib/bench-stats.js';
import { positiveIntFlag } from './lib/int-flag.js';
import { fleetflashProcess, freePort, volatileRedisServer } from './lib/processes.js';

const downloads = positiveIntFlag('downloads', 5000);
const rounds = positiveIntFlag('rounds', 5);
const concurrency = positiveIntFlag('concurrency', 200);
const sizeKb = positiveIntFlag('size-kb', 128);

/** One download on a new connection; rejects unless it is a 200 with exactly `size` bytes. */
function download(url: string, size: number, agent: http.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let received = 0;
        res.on('data', (chunk: Buffer) => (received += chunk.length));
        res.on('end', () =>
          res.statusCode === 200 && received === size
            ? resolve()
            : reject(new Error(`download answered ${res.statusCode} with ${received} of ${size} bytes`)),
        );
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

async function main(): Promise<void> {
  console.log(
    `bench:download: ${os.cpus().length} cores, Node ${process.version}, ${downloads} downloads of ${sizeKb} KB per round, ` +
      `${concurrency} at a time, a new connection each, ${rounds} rounds after a warm-up`,
  );
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'ff-bench-download-'));
  const [redisPort, httpPort, mqttPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const redis = volatileRedisServer(redisPort, workDir);
  const secret = randomBytes(32).toString('hex');
  const operatorToken = `op-${randomBytes(12).toString('hex')}`;
  const service = fleetflashProcess(
    'service',
    {
      ROLE: 'api,broker',
      PORT: String(httpPort),
      MQTT_PORT: String(mqttPort),
      HOST: '127.0.0.1',
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      SIGNING_SECRET: secret,
      MQTT_SERVICE_PASSWORD: randomBytes(16).toString('hex'),
      API_TOKENS: `operator:${operatorToken}`,
      FIRMWARE_DIR: path.join(workDir, 'firmware'),
      LOG_LEVEL: 'warn',
    },
    path.join(workDir, 'service.log'),
  );
  try {
    await redis.start();
    await service.start(60_000);
    const base = `http://127.0.0.1:${httpPort}`;
    const bytes = randomBytes(sizeKb * 1024);
    const uploaded = await fetch(`${base}/api/firmware?version=v1.61&products=0xA053`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    if (uploaded.status !== 201)
      throw new Error(`upload answered ${uploaded.status}: ${await uploaded.text()}`);
    const { firmware } = (await uploaded.json()) as { firmware: { sha256: string } };
    const tokens = new TokenSigner(secret);
    // keepAlive off: a device downloads once per update, on a connection of its own.
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    const pid = service.pid!;

    const oneRound = async (r: number): Promise<number> => {
      // Tokens made before the clock starts: minting them is the worker's work, not the server's.
      const urls = Array.from(
        { length: downloads },
        (_, i) =>
          `${base}/firmware/${firmware.sha256}?token=${tokens.downloadToken(firmware.sha256, `jbench.r${r}.d${i}`, 600_000)}`,
      );
      const before = (await procSample(pid)).cpuMs;
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let i = next++; i < downloads; i = next++) await download(urls[i], bytes.length, agent);
        }),
      );
      return (((await procSample(pid)).cpuMs - before) * 1000) / downloads;
    };

    await oneRound(0);
    const perDownloadUs: number[] = [];
    for (let r = 1; r <= rounds; r++) {
      perDownloadUs.push(await oneRound(r));
      console.log(`  round ${r}: ${perDownloadUs[r - 1].toFixed(0)} us of service CPU per download`);
    }
    const s = spread(perDownloadUs);
    console.log(`service CPU per download: ${formatSpread(s, 0, ' us')}`);
    console.log(
      JSON.stringify({
        bench: 'fleetflash-download',
        downloads,
        rounds,
        concurrency,
        sizeKb,
        serviceCpuUsPerDownload: round(s.median, 1),
        spread: [round(s.min, 1), round(s.max, 1)],
      }),
    );
  } finally {
    await service.stop();
    await redis.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error('bench:download failed:', err);
  process.exit(1);
});
