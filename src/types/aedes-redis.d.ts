/**
 * Typings for aedes-persistence-redis, which ships none; only what fleetflash uses. The options are
 * ioredis' (it opens its own connection with them) plus its own.
 */
declare module 'aedes-persistence-redis' {
  import type { AedesOptions } from 'aedes';
  import type { RedisOptions } from 'ioredis';

  interface AedesPersistenceRedisOptions extends RedisOptions {
    /** ioredis' prefix for every key it touches. */
    keyPrefix?: string;
    /** Offline messages delivered on a client's CONNECT at most (default 1000). */
    maxSessionDelivery?: number;
    /** A connection to use instead of opening one (an ioredis instance of its own ioredis version). */
    conn?: unknown;
  }

  type AedesPersistence = NonNullable<AedesOptions['persistence']> & {
    /** Without a callback: a promise (aedes 1.x uses the promise forms). */
    destroy(): Promise<void>;
  };

  function aedesPersistenceRedis(options?: AedesPersistenceRedisOptions): AedesPersistence;
  export default aedesPersistenceRedis;
}
