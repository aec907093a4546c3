/**
 * The portal's MQTT connection manager (web/src/live-connection.ts) with fake clients: subscriptions
 * survive reconnects, credentials are renewed before they expire without a gap (make before break),
 * and refused credentials are replaced.
 */
import { EventEmitter } from 'node:events';
import { jest } from '@jest/globals';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { MqttCredentials } from '../../web/src/api-client.js';
import { LiveConnection, type LiveState } from '../../web/src/live-connection.js';

// The module reads these browser globals; Node 20 has `crypto` but neither of these.
const g = globalThis as Record<string, unknown>;
g.location ??= { protocol: 'http:' };
g.navigator ??= { onLine: true };

class FakeClient extends EventEmitter {
  connected = false;
  ended = false;
  readonly subscribed: string[][] = [];
  readonly unsubscribed: string[] = [];

  constructor(
    readonly url: string,
    readonly options: IClientOptions,
  ) {
    super();
  }

  subscribe(
    map: Record<string, unknown>,
    cb: (err: Error | null, granted: { topic: string; qos: number }[]) => void,
  ): this {
    const topics = Object.keys(map);
    this.subscribed.push(topics);
    queueMicrotask(() =>
      cb(
        null,
        topics.map((topic) => ({ topic, qos: 1 })),
      ),
    );
    return this;
  }

  unsubscribe(topic: string): this {
    this.unsubscribed.push(topic);
    return this;
  }

  end(): this {
    this.ended = true;
    if (this.connected) {
      this.connected = false;
      this.emit('close');
    }
    return this;
  }

  up(): void {
    this.connected = true;
    this.emit('connect');
  }

  refuse(code: number): void {
    this.emit('error', Object.assign(new Error('Connection refused'), { code }));
    this.emit('close');
  }

  deliver(topic: string, body: unknown): void {
    this.emit('message', topic, Buffer.from(JSON.stringify(body)));
  }
}

function setup(ttlMs = 60_000) {
  const clients: FakeClient[] = [];
  let issued = 0;
  const credentials = jest.fn(async (): Promise<MqttCredentials> => {
    issued += 1;
    return {
      url: 'ws://127.0.0.1:1/mqtt',
      username: 'operator-1',
      password: `token-${issued}`,
      expiresAt: new Date(Date.now() + ttlMs).toISOString(),
      clientIdPrefix: 'web-',
    };
  });
  const states: LiveState[] = [];
  const live = new LiveConnection({
    credentials,
    connect: (url, options) => {
      const c = new FakeClient(url, options);
      clients.push(c);
      return c as unknown as MqttClient;
    },
  });
  live.onState((s) => states.push(s));
  return { live, clients, credentials, states };
}

const flush = () => new Promise<void>((r) => setImmediate(r));

beforeEach(() => jest.useFakeTimers({ doNotFake: ['queueMicrotask', 'setImmediate', 'nextTick'] }));
afterEach(() => jest.useRealTimers());

test('subscriptions made before the connection are sent on connect and routed by filter', async () => {
  const { live, clients, states } = setup();
  const got: string[] = [];
  const active = jest.fn();
  live.subscribe('fleetflash/jobs/j1/#', (topic) => got.push(`job:${topic}`), active);
  live.subscribe('fleetflash/devices/+', (topic) => got.push(`dev:${topic}`));
  await live.start();
  const [c] = clients;
  expect(c.options.clientId).toMatch(/^web-[0-9a-f]{16}$/);
  expect(c.options.password).toBe('token-1');
  c.up();
  await flush();
  expect(c.subscribed).toEqual([['fleetflash/jobs/j1/#', 'fleetflash/devices/+']]);
  expect(active).toHaveBeenCalledTimes(1);
  c.deliver('fleetflash/jobs/j1/status', { seq: 1 });
  c.deliver('fleetflash/devices/abc', { x: 1 });
  c.deliver('fleetflash/jobs/j2/status', { seq: 1 });
  expect(got).toEqual(['job:fleetflash/jobs/j1/status', 'dev:fleetflash/devices/abc']);
  expect(states).toEqual(['connecting', 'live']);
  live.close();
  expect(c.ended).toBe(true);
});

test('a new subscription to a filter already held is sent again, so the retained state comes again', async () => {
  const { live, clients } = setup();
  await live.start();
  clients[0].up();
  const a = live.subscribe('fleetflash/devices/+', () => {});
  const b = live.subscribe('fleetflash/devices/+', () => {});
  expect(clients[0].subscribed).toEqual([['fleetflash/devices/+'], ['fleetflash/devices/+']]);
  a.close();
  expect(clients[0].unsubscribed).toEqual([]);
  b.close();
  expect(clients[0].unsubscribed).toEqual(['fleetflash/devices/+']);
  live.close();
});

test('credentials are renewed before they expire and the new client takes over before the old one closes', async () => {
  const { live, clients, credentials, states } = setup(10_000);
  const got: unknown[] = [];
  const active = jest.fn();
  live.subscribe('fleetflash/jobs/j1/#', (_t, body) => got.push(body), active);
  await live.start();
  clients[0].up();
  await flush();
  // A fifth of the 10 s lifetime before expiry: after 8 s.
  await jest.advanceTimersByTimeAsync(7_900);
  expect(credentials).toHaveBeenCalledTimes(1);
  await jest.advanceTimersByTimeAsync(200);
  expect(credentials).toHaveBeenCalledTimes(2);
  expect(clients).toHaveLength(2);
  const [old, next] = clients;
  expect(next.options.password).toBe('token-2');
  // Until the new one is up the old one still serves.
  expect(old.ended).toBe(false);
  old.deliver('fleetflash/jobs/j1/events', { seq: 1 });
  next.up();
  await flush();
  expect(old.ended).toBe(true);
  expect(next.subscribed).toEqual([['fleetflash/jobs/j1/#']]);
  expect(active).toHaveBeenCalledTimes(2);
  next.deliver('fleetflash/jobs/j1/events', { seq: 2 });
  expect(got).toEqual([{ seq: 1 }, { seq: 2 }]);
  // The header never saw the connection go down.
  expect(states).toEqual(['connecting', 'live']);
  live.close();
});

test('renewal follows the server clock when the browser clock is far off', async () => {
  const { live, clients, credentials } = setup();
  // The browser is 10 minutes ahead: by its own clock these 60 s credentials expired long ago.
  credentials.mockImplementationOnce(async () => ({
    url: 'ws://127.0.0.1:1/mqtt',
    username: 'operator-1',
    password: 'token-skewed',
    expiresAt: new Date(Date.now() - 600_000 + 60_000).toISOString(),
    serverTime: Date.now() - 600_000,
  }));
  await live.start();
  clients[0].up();
  await jest.advanceTimersByTimeAsync(45_000);
  expect(credentials).toHaveBeenCalledTimes(1);
  await jest.advanceTimersByTimeAsync(3_000);
  expect(credentials).toHaveBeenCalledTimes(2);
  live.close();
});

test('a broker that refuses the credentials (CONNACK 5) gets fresh ones, with backoff', async () => {
  const { live, clients, credentials, states } = setup();
  await live.start();
  clients[0].refuse(5);
  expect(states.at(-1)).toBe('reconnecting');
  await jest.advanceTimersByTimeAsync(1000);
  expect(credentials).toHaveBeenCalledTimes(2);
  expect(clients[0].ended).toBe(true);
  clients[1].refuse(4);
  await jest.advanceTimersByTimeAsync(1000);
  expect(credentials).toHaveBeenCalledTimes(2);
  await jest.advanceTimersByTimeAsync(1000);
  expect(credentials).toHaveBeenCalledTimes(3);
  clients[2].up();
  expect(states.at(-1)).toBe('live');
  live.close();
});

test('a rejected client id (CONNACK 2) is retried with fresh credentials and their client-id prefix', async () => {
  const { live, clients, credentials } = setup();
  credentials.mockResolvedValueOnce({
    url: 'ws://127.0.0.1:1/mqtt',
    username: 'operator-1',
    password: 'token-a',
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    clientIdPrefix: 'web-operator-1-',
  });
  await live.start();
  expect(clients[0].options.clientId).toMatch(/^web-operator-1-[0-9a-f]{16}$/);
  clients[0].refuse(2);
  await jest.advanceTimersByTimeAsync(1000);
  expect(clients).toHaveLength(2);
  live.close();
});

test('a connection down for long reads offline, and a failing credentials request is retried', async () => {
  const { live, clients, credentials, states } = setup();
  await live.start();
  clients[0].up();
  clients[0].connected = false;
  clients[0].emit('close');
  expect(states.at(-1)).toBe('reconnecting');
  await jest.advanceTimersByTimeAsync(16_000);
  clients[0].emit('reconnect');
  expect(states.at(-1)).toBe('offline');
  credentials.mockRejectedValueOnce(new Error('api down'));
  clients[0].refuse(5);
  await jest.advanceTimersByTimeAsync(1000);
  expect(credentials).toHaveBeenCalledTimes(2);
  expect(clients).toHaveLength(1);
  await jest.advanceTimersByTimeAsync(2000);
  expect(credentials).toHaveBeenCalledTimes(3);
  expect(clients).toHaveLength(2);
  live.close();
});
