/**
 * `npm run demo`: the whole product on one machine with zero configuration — api, broker and worker
 * in one process, firmware images seeded, and a simulated fleet connected to the embedded broker.
 * Every setting can still be overridden by the environment (see the README).
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import './quiet-debug.js';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { portalIdsFor, realTimeProtocolTimers, startFleet, TYPICAL_TIMING_SPREAD } from '../devices-sim/index.js';
import { parseConfig } from './config.js';
import { seedFirmware } from './demo/seed-firmware.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import { startService } from './service/service.js';

const env = process.env;

/** The first free TCP port at or above `preferred` on 127.0.0.1. */
async function freePort(preferred: number): Promise<number> {
  for (let port = preferred; port < preferred + 50; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in ${preferred}..${preferred + 49}`);
}

async function main(): Promise<void> {
  const operatorToken = env.DEMO_OPERATOR_TOKEN ?? `op-${randomBytes(12).toString('hex')}`;
  const viewerToken = env.DEMO_VIEWER_TOKEN ?? `view-${randomBytes(12).toString('hex')}`;
  const sitesCount = Number(env.DEMO_SITES ?? 24);
  const timeScale = Number(env.DEMO_TIME_SCALE ?? 20);
  const demoEnv = {
    QUEUE_PREFIX: 'demo',
    LOG_LEVEL: 'info',
    ...env,
    PORT: env.PORT ?? String(await freePort(3000)),
    MQTT_PORT: env.MQTT_PORT ?? String(await freePort(1884)),
    HOST: env.HOST ?? '127.0.0.1',
    SIGNING_SECRET: env.SIGNING_SECRET ?? randomBytes(32).toString('hex'),
    MQTT_SERVICE_PASSWORD: env.MQTT_SERVICE_PASSWORD ?? randomBytes(16).toString('hex'),
    API_TOKENS: env.API_TOKENS ?? `operator:${operatorToken},viewer:${viewerToken}`,
    ROLE: env.ROLE ?? 'api,broker,worker',
  };
  let config;
  try {
    config = parseConfig(demoEnv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`demo: bad configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const service = await startService(config, logger, { statusPollMs: 1000 });
  const images = await seedFirmware(service.firmware, undefined, 'demo');

  // Register the simulated sites like an installer would, and hand their secrets to the simulator.
  const portalIds = portalIdsFor(sitesCount, 1, 'demo');
  const secrets = new Map((await service.sites.register(portalIds.map((portalId) => ({ portalId })), 'demo')).map((s) => [s.portalId, s.secret]));
  const fleet = await startFleet({
    url: service.mqttUrl,
    sites: sitesCount,
    seed: 1,
    portalIdSalt: 'demo',
    timeScale,
    durations: realTimeProtocolTimers(timeScale),
    timingSpread: TYPICAL_TIMING_SPREAD,
    credentials: (portalId) => secrets.get(portalId) ?? '',
    logger: logger.child({ component: 'sim' }),
  });

  const base = `http://127.0.0.1:${service.httpPort}`;
  const lines = [
    '',
    'fleetflash demo is running',
    `  portal          ${base}/#token=${operatorToken}`,
    `  API             ${base}/api   (Authorization: Bearer <token>)`,
    `  operator token  ${operatorToken}`,
    `  viewer token    ${viewerToken}`,
    `  MQTT (TCP)      mqtt://127.0.0.1:${service.mqttPort}`,
    `  MQTT (WS)       ws://127.0.0.1:${service.httpPort}/mqtt   (credentials: POST /api/mqtt-credentials)`,
    `  fleet           ${fleet.sites.length} simulated sites, ${fleet.devices().length} devices, time scale ×${timeScale}`,
    `  firmware        ${images.map((i) => `${i.name} ${i.version}`).join(', ')}`,
    '',
    'try:',
    `  curl -s -H 'Authorization: Bearer ${operatorToken}' ${base}/api/devices`,
    `  curl -s -H 'Authorization: Bearer ${operatorToken}' -H 'Content-Type: application/json' \\`,
    `       -d '{"firmwareId":"${images[3]?.id ?? '<id>'}","devices":["${fleet.devices().find((d) => d.service === 'solarcharger')?.deviceId ?? '<deviceId>'}"]}' ${base}/api/jobs`,
    '',
    'Ctrl-C stops everything.',
    '',
  ];
  console.log(lines.join('\n'));

  let stopping = false;
  const stop = async () => {
    if (stopping) process.exit(1);
    stopping = true;
    await fleet.stop();
    await service.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  console.error('demo failed:', err);
  process.exit(1);
});
