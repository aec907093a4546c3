/**
 * How every Redis connection of the service is opened: one endpoint (`REDIS_URL`), or the current
 * master of a Sentinel-monitored group (`REDIS_SENTINELS`, `REDIS_SENTINEL_NAME`), so that a failover
 * moves the stores, the queue and the broker cluster to the new master without a restart. ioredis asks
 * the sentinels for the master on every (re)connection and checks that the server it reaches is one.
 *
 * A failover behind one endpoint (a DNS name or virtual IP that moves to the new master, as managed
 * Redis services do, or a master demoted by hand with `REPLICAOF`) can leave connections open to the
 * old master, now a replica, which refuses every write with `READONLY`. Such a connection reconnects
 * (reaching whatever the endpoint names now) and sends the refused command again: Redis refused it
 * before running any of it, so it runs once. Connections that never write follow through
 * replica-watch.ts.
 */
import type { RedisOptions } from 'ioredis';

/** A sentinel's address. */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** What the connection options are made of (the matching fields of the service's config). */
export interface RedisEndpoint {
  redisUrl: string;
  /** Sentinels to ask for the master; null: `redisUrl`'s host and port are the server. */
  redisSentinels: readonly SentinelAddress[] | null;
  /** The master group's name the sentinels monitor. */
  redisSentinelName: string;
  /** Password of the sentinels themselves (their `requirepass`), if they have one. */
  redisSentinelPassword: string | null;
}

/** ioredis connection options from a `redis://` or `rediss://` URL (the libraries want options, not a URL). */
export function redisOptionsFromUrl(url: string): {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
  tls?: object;
} {
  const u = new URL(url);
  const db = Number(u.pathname.replace(/^\//, '') || 0);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    db: Number.isInteger(db) ? db : 0,
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * Connection options for `endpoint`. With sentinels, `redisUrl` still gives the master's credentials,
 * database and TLS (`rediss://`, then the sentinels are spoken to over TLS too); its host is unused.
 * `onReadOnly` is told each time a connection made with them is refused a write as a replica's.
 */
export function redisConnectionOptions(endpoint: RedisEndpoint, onReadOnly?: () => void): RedisOptions {
  const { host, port, ...rest } = redisOptionsFromUrl(endpoint.redisUrl);
  const reconnectOnError = (err: Error): 2 | false => {
    if (!err.message.startsWith('READONLY')) return false;
    onReadOnly?.();
    // 2: reconnect, then send the refused command again.
    return 2;
  };
  if (!endpoint.redisSentinels) return { host, port, ...rest, reconnectOnError };
  return {
    ...rest,
    reconnectOnError,
    sentinels: endpoint.redisSentinels.map((s) => ({ host: s.host, port: s.port })),
    name: endpoint.redisSentinelName,
    ...(endpoint.redisSentinelPassword ? { sentinelPassword: endpoint.redisSentinelPassword } : {}),
    ...(rest.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
  };
}

/** `REDIS_SENTINELS=host:port,host:port` → addresses; throws a message naming the bad entry. */
export function parseSentinels(value: string): SentinelAddress[] {
  const list = value
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error('must list at least one host:port');
  return list.map((entry, i) => {
    const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new Error(`entry ${i + 1} ("${entry}") must be host:port`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
}
