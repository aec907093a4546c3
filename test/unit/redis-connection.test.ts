/** Redis connection settings: `REDIS_URL` alone, or the sentinels naming the master; what a READONLY refusal does. */
import { parseConfig } from '../../src/config.js';
import { redisConnectionOptions } from '../../src/store/redis-connection.js';
import { configRefusal } from '../helpers/config-refusal.js';

const BASE = {
  SIGNING_SECRET: 's'.repeat(32),
  MQTT_SERVICE_PASSWORD: 'p',
  API_TOKENS: 'operator:0123456789abcdef',
};

function configError(env: Record<string, string>): string {
  const refusal = configRefusal({ ...BASE, ...env });
  if (!refusal) throw new Error('no ConfigError');
  return refusal.message;
}

test('without sentinels the URL is the server', () => {
  const config = parseConfig({ ...BASE, REDIS_URL: 'redis://app:s%40cret@redis.internal:6380/2' });
  expect(config.redisSentinels).toBeNull();
  expect(redisConnectionOptions(config)).toEqual({
    host: 'redis.internal',
    port: 6380,
    username: 'app',
    password: 's@cret',
    db: 2,
    reconnectOnError: expect.any(Function),
  });
});

test('with sentinels the master is asked for; the URL keeps credentials, database and TLS', () => {
  const config = parseConfig({
    ...BASE,
    REDIS_URL: 'rediss://:pw@ignored:1/3',
    REDIS_SENTINELS: ' 10.0.0.1:26379, sentinel-b.internal:26380 ,[::1]:26381',
    REDIS_SENTINEL_NAME: 'ff-main',
    REDIS_SENTINEL_PASSWORD: 'sp',
  });
  expect(redisConnectionOptions(config)).toEqual({
    sentinels: [
      { host: '10.0.0.1', port: 26379 },
      { host: 'sentinel-b.internal', port: 26380 },
      { host: '::1', port: 26381 },
    ],
    name: 'ff-main',
    sentinelPassword: 'sp',
    password: 'pw',
    db: 3,
    tls: {},
    enableTLSForSentinelMode: true,
    sentinelTLS: {},
    reconnectOnError: expect.any(Function),
  });
  expect(parseConfig({ ...BASE, REDIS_SENTINELS: '127.0.0.1:26379' }).redisSentinelName).toBe('mymaster');
});

test("a write refused as a replica's (READONLY) reconnects and is sent again; other errors do not", () => {
  for (const env of [{}, { REDIS_SENTINELS: '127.0.0.1:26379' }]) {
    let told = 0;
    const { reconnectOnError } = redisConnectionOptions(parseConfig({ ...BASE, ...env }), () => told++);
    expect(reconnectOnError?.(new Error("READONLY You can't write against a read only replica."))).toBe(2);
    expect(reconnectOnError?.(new Error('ERR unknown command'))).toBe(false);
    expect(reconnectOnError?.(new Error('NOSCRIPT No matching script'))).toBe(false);
    expect(told).toBe(1);
  }
});

test('bad sentinel settings are refused with the variable named', () => {
  expect(configError({ REDIS_SENTINELS: '10.0.0.1' })).toMatch(
    /^REDIS_SENTINELS: .*entry 1 \("10\.0\.0\.1"\) must be host:port/,
  );
  expect(configError({ REDIS_SENTINELS: 'a:26379,b:70000' })).toMatch(/^REDIS_SENTINELS: .*entry 2/);
  expect(configError({ REDIS_SENTINELS: ',' })).toMatch(/^REDIS_SENTINELS: .*at least one/);
  expect(configError({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'bad name' })).toMatch(
    /^REDIS_SENTINEL_NAME: /,
  );
});
