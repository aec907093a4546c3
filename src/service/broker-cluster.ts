/**
 * The Redis backend that lets several api,broker instances act as one MQTT broker
 * (`BROKER_CLUSTER=redis`): aedes-persistence-redis keeps retained messages, subscriptions, sessions
 * and wills in Redis, and mqemitter-redis routes every publish to the instances whose clients
 * subscribed, through Redis pub/sub. A browser on instance A then sees the status of a device whose
 * site is connected to instance B, and a retained message stored through one instance is served by all.
 *
 * Both live under the deployment's `QUEUE_PREFIX` (keys `<prefix>:mqtt:…`, pub/sub channels
 * `<prefix>:mqtt:<topic>`): Redis pub/sub ignores the database number, so without the channel prefix
 * two deployments on one Redis would receive each other's messages.
 */
import { createRequire } from 'node:module';
import aedesPersistenceRedis from 'aedes-persistence-redis';
import type { AedesOptions } from 'aedes';
import type { RedisOptions } from 'ioredis';
import MQEmitterRedis from 'mqemitter-redis';
import { useSubscriptionTrie } from '../../broker/subscription-trie.js';
import type { Logger } from 'pino';
import { endOnDisconnect } from '../store/redis-disconnect.js';
import type { Reconnectable, ReplicaWatch } from '../store/replica-watch.js';

export interface BrokerClusterBackend {
  persistence: NonNullable<AedesOptions['persistence']>;
  mq: NonNullable<AedesOptions['mq']>;
  /** Disconnects the persistence, then the emitter; call after the broker closed. */
  close(): Promise<void>;
}

/** mqemitter-redis with a channel prefix (its `MQEmitterRedisPrefix`, not in its typings). */
type PrefixedEmitterCtor = new (prefix: string, options: object) => NonNullable<AedesOptions['mq']>;

/**
 * Kept out of the emitter's auto-pipelining (mqemitter-redis turns it on for both its connections).
 * ioredis means to send no subscription command through a pipeline, but its list spells PUNSUBSCRIBE
 * "unpsubscribe": a PUNSUBSCRIBE waited for the next tick while a PSUBSCRIBE of the same pattern issued
 * in the same tick went out at once, so Redis ended unsubscribed. When the last subscriber of a site's
 * `P/<id>/out/+` on one instance left as another subscribed (two workers re-attaching executions of one
 * site), that instance heard none of the site's answers again and the executions timed out.
 */
const UNSUBSCRIBE_COMMANDS = ['punsubscribe', 'sunsubscribe'];

/**
 * The emitter alone: mqemitter-redis on the Redis `options` point to, channels under `namespace`.
 * Its own `close()` does nothing (see below); `close` here shuts it.
 * Its two connections (publishing, subscribed) never write: `replicas` moves them after a failover
 * behind one endpoint (replica-watch.ts).
 */
export function createClusterEmitter(
  options: RedisOptions,
  namespace: string,
  logger: Logger,
  replicas?: ReplicaWatch,
): { mq: BrokerClusterBackend['mq']; close(): Promise<void> } {
  const Prefixed = (MQEmitterRedis as unknown as { MQEmitterRedisPrefix: PrefixedEmitterCtor })
    .MQEmitterRedisPrefix;
  const mq = new Prefixed(namespace, { ...options, autoPipeliningIgnoredCommands: UNSUBSCRIBE_COMMANDS });
  // Its local subscribers in the broker's compact index, as in a single broker (subscription-trie.ts).
  // mqemitter-redis reads the matcher once more itself, for an array's truthiness when it unsubscribes.
  useSubscriptionTrie(mq);
  const { pubConn, subConn } = mq as unknown as Record<'pubConn' | 'subConn', Reconnectable>;
  // Its close() waits for both to end, also when one is waiting to reconnect (redis-disconnect.ts).
  for (const conn of [pubConn, subConn]) endOnDisconnect(conn);
  const unfollow = [pubConn, subConn].map((conn) => replicas?.follow(conn));
  // mqemitter-redis reports connection errors on `state`; ioredis reconnects by itself.
  (mq as unknown as { state: NodeJS.EventEmitter }).state.on('error', (err: Error) =>
    logger.warn({ err: err.message }, 'broker cluster pub/sub connection error'),
  );
  // aedes closes its emitter in close(), but the persistence unsubscribes through it when destroyed
  // (BroadcastPersistence.brokerUnsubscribe) and never calls back once it is closed: so the broker's
  // close leaves it open, and the backend's close() shuts the persistence first, then the emitter.
  const emitter = mq as unknown as { close(cb?: () => void): void };
  const closeEmitter = emitter.close.bind(emitter);
  emitter.close = (cb) => void (cb && process.nextTick(cb));
  return {
    mq,
    close: () => {
      for (const stop of unfollow) stop?.();
      return new Promise<void>((resolve) => closeEmitter(() => resolve()));
    },
  };
}

/** Opens the persistence and the emitter on the Redis `options` point to, under `<prefix>:mqtt:`. */
export function createBrokerClusterBackend(
  options: RedisOptions,
  prefix: string,
  logger: Logger,
  replicas?: ReplicaWatch,
): BrokerClusterBackend {
  const namespace = `${prefix}:mqtt:`;
  const persistence = aedesPersistenceRedis({ conn: persistenceConnection(options, namespace, logger) });
  const { mq, close: closeEmitter } = createClusterEmitter(options, namespace, logger, replicas);
  return {
    persistence,
    mq,
    close: async () => {
      // The promise form: aedes 1.x sets the persistence up through `setup()`, which never marks the
      // callback wrapper ready, so `destroy(cb)` would wait for a 'ready' that never comes.
      await persistence
        .destroy()
        .catch((err: unknown) => logger.warn({ err }, 'broker persistence did not close cleanly'));
      await closeEmitter();
    },
  };
}

/** Commands aedes-persistence-redis sends without waiting for them (the wills' index, in `putWill` and `delWill`). */
const UNAWAITED_COMMANDS = ['lrem', 'rpush'] as const;

type PersistenceConnection = {
  on(event: 'error', listener: (err: Error) => void): unknown;
} & Record<(typeof UNAWAITED_COMMANDS)[number], (...args: unknown[]) => Promise<unknown>>;

/**
 * The persistence's connection, opened here, with the persistence's own copy of ioredis, keys under
 * `namespace`:
 * - to hear its errors: left to itself it has no listener, and every failed reconnect (Redis
 *   restarting, a failover) printed an "Unhandled error event" stack trace to stderr;
 * - so that a command the persistence sends without waiting is never an unhandled rejection: one
 *   queued while the connection was not ready and failed with "Connection is closed." when the
 *   broker shut down killed a test process (and would end a service's shutdown with a crash). Who
 *   awaits such a command still gets its error;
 * - ended when disconnected while waiting to reconnect (redis-disconnect.ts).
 */
export function persistenceConnection(options: RedisOptions, namespace: string, logger: Logger): PersistenceConnection {
  const conn = endOnDisconnect(new (persistenceIoredis())({ ...options, keyPrefix: namespace }));
  conn.on('error', (err: Error) => logger.warn({ err: err.message }, 'broker persistence connection error'));
  for (const name of UNAWAITED_COMMANDS) {
    const send = conn[name].bind(conn);
    conn[name] = (...args: unknown[]) => {
      const reply = send(...args);
      reply.catch(() => undefined);
      return reply;
    };
  }
  return conn;
}

/** The ioredis class aedes-persistence-redis itself loads (its dependency may be another major than ours). */
function persistenceIoredis(): new (options: RedisOptions) => PersistenceConnection {
  const here = createRequire(import.meta.url);
  return createRequire(here.resolve('aedes-persistence-redis'))('ioredis') as ReturnType<typeof persistenceIoredis>;
}
