/**
 * Starts the whole service (api, broker, worker) on ephemeral ports against the real Redis with a
 * unique key prefix, seeds firmware, registers simulated sites and connects them, and tears it all
 * down again. Integration tests build on this.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { portalIdsFor, startFleet, type Fleet, type FleetOptions } from '../../devices-sim/index.js';
import { parseConfig } from '../../src/config.js';
import { DEMO_IMAGES, seedFirmware } from '../../src/demo/seed-firmware.js';
import type { DeviceRecord, FirmwareRecord } from '../../src/protocol/index.js';
import type { Clock } from '../../src/rollout/clock.js';
import { startService, type Service, type ServiceOptions } from '../../src/service/service.js';
import { deleteKeys } from './redis-keys.js';

export interface HarnessOptions {
  env?: Record<string, string>;
  statusPollMs?: number;
  /** The rollout's clock (default: wall time). */
  clock?: Clock;
  rollout?: ServiceOptions['rollout'];
  /** Redis round-trip sampling for the metrics (default 5 s). */
  redisPingIntervalMs?: number;
  /** Keep the service's log lines (info and up) in `Harness.logs`, e.g. to check every request's status. */
  captureLogs?: boolean;
}

/** A captured pino line. */
export interface HarnessLogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface Harness {
  service: Service;
  base: string;
  operatorToken: string;
  viewerToken: string;
  images: FirmwareRecord[];
  fleets: Fleet[];
  /** Registers `sites` sites under `salt`, connects them, and waits until the inventory has them all. */
  addFleet(options: Partial<FleetOptions> & { sites: number; salt: string }): Promise<Fleet>;
  /** fetch against the API with the operator token (or `token`). */
  api(pathname: string, init?: RequestInit & { token?: string; json?: unknown }): Promise<Response>;
  image(productId: number): FirmwareRecord;
  /** The service's log lines when started with `captureLogs`, else empty. */
  logs: HarnessLogLine[];
  /** Stops fleets and service; `keepRedis` leaves the prefix's keys for a service started after it. */
  close(options?: { keepRedis?: boolean }): Promise<void>;
}

/** Polls `check` until it returns a truthy value (state in Redis has no event to wait on). */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 20_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const operatorToken = `op-${randomBytes(12).toString('hex')}`;
  const viewerToken = `view-${randomBytes(12).toString('hex')}`;
  const firmwareDir = await mkdtemp(path.join(os.tmpdir(), 'ff-fw-'));
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const config = parseConfig({
    ROLE: 'api,broker,worker',
    PORT: '0',
    MQTT_PORT: '0',
    HOST: '127.0.0.1',
    QUEUE_PREFIX: prefix,
    SIGNING_SECRET: randomBytes(32).toString('hex'),
    MQTT_SERVICE_PASSWORD: randomBytes(16).toString('hex'),
    API_TOKENS: `operator:${operatorToken},viewer:${viewerToken}`,
    FIRMWARE_DIR: firmwareDir,
    LOG_LEVEL: 'silent',
    RPC_TIMEOUT_MS: '2000',
    LOCK_DURATION_MS: '5000',
    STALLED_INTERVAL_MS: '2000',
    ...options.env,
  });
  const logs: HarnessLogLine[] = [];
  const logger = options.captureLogs
    ? pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as HarnessLogLine) })
    : pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const service = await startService(config, logger, {
    statusPollMs: options.statusPollMs ?? 250,
    clock: options.clock,
    rollout: options.rollout,
    redisPingIntervalMs: options.redisPingIntervalMs,
  });
  const images = await seedFirmware(service.firmware, DEMO_IMAGES, 'test');
  const base = service.httpUrl!;
  const fleets: Fleet[] = [];

  const api: Harness['api'] = (pathname, init = {}) => {
    const { token, json, ...rest } = init;
    const headers = new Headers(rest.headers);
    headers.set('authorization', `Bearer ${token ?? operatorToken}`);
    if (json !== undefined) headers.set('content-type', 'application/json');
    return fetch(`${base}${pathname}`, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
  };

  const addFleet: Harness['addFleet'] = async ({ sites, salt, ...rest }) => {
    const ids = portalIdsFor(sites, rest.seed ?? 1, salt);
    const secrets = new Map((await service.sites.register(ids.map((portalId) => ({ portalId })), 'test')).map((s) => [s.portalId, s.secret]));
    const fleet = await startFleet({
      url: service.mqttUrl,
      sites,
      seed: 1,
      timeScale: 1000,
      portalIdSalt: salt,
      credentials: (portalId) => secrets.get(portalId) ?? 'unknown',
      ...rest,
    });
    fleets.push(fleet);
    const expected = fleet.devices().map((d) => d.deviceId);
    await waitFor(
      async () => (await service.devices.getMany(expected)).every((d: DeviceRecord | null) => d && d.online && d.version),
      20_000,
      `inventory of ${expected.length} devices`,
    );
    return fleet;
  };

  const image = (productId: number) => {
    const found = images.find((i) => i.productIds.includes(productId) && !i.version.includes('~'));
    if (!found) throw new Error(`no seeded image for product ${productId}`);
    return found;
  };

  const close: Harness['close'] = async ({ keepRedis = false } = {}) => {
    for (const f of fleets) await f.stop();
    await service.close();
    if (!keepRedis) await deletePrefix(prefix);
    await rm(firmwareDir, { recursive: true, force: true });
  };

  return { service, base, operatorToken, viewerToken, images, fleets, addFleet, api, image, logs, close };
}

/** Removes every Redis key of a test prefix (our keys and BullMQ's). */
async function deletePrefix(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis('redis://127.0.0.1:6379');
  try {
    await deleteKeys(redis, `${prefix}:*`);
  } finally {
    await redis.quit();
  }
}
