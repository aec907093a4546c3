/**
 * How connections that only listen follow a failover behind one Redis endpoint.
 *
 * When `REDIS_URL` names a DNS name or virtual IP that moves to a new master, connections opened
 * before stay with the old master, now a replica. A connection that writes learns it from the first
 * refusal (`READONLY`) and reconnects by itself (redis-connection.ts). A pub/sub connection never
 * writes: it stays subscribed on the replica, which hears only what is published on itself, while
 * everyone else publishes on the new master. So every refusal is reported here, and once refusals
 * stop for {@link RESUBSCRIBE_DELAY_MS} (the writers then reach the new master) each followed
 * connection reconnects too (ioredis subscribes it again).
 */
import type { Logger } from 'pino';

/** Quiet time after the last refusal before the listening connections reconnect. */
export const RESUBSCRIBE_DELAY_MS = 500;

/** What a followed connection must do: ioredis' `disconnect(true)` (close, then reconnect). */
export interface Reconnectable {
  disconnect(reconnect?: boolean): void;
}

export class ReplicaWatch {
  private readonly followed = new Set<Reconnectable>();
  private timer: NodeJS.Timeout | null = null;
  private loggedAt = 0;

  constructor(private readonly logger: Logger) {}

  /** A write was refused as a replica's (`reconnectOnError` of redis-connection.ts). */
  readonly refused = (): void => {
    if (Date.now() - this.loggedAt >= 1000) {
      this.loggedAt = Date.now();
      this.logger.warn('redis refused a write as a replica (READONLY); reconnecting to reach the master');
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.resubscribe(), RESUBSCRIBE_DELAY_MS).unref();
  };

  /** Follows a listening connection until the returned function is called. */
  follow(conn: Reconnectable): () => void {
    this.followed.add(conn);
    return () => this.followed.delete(conn);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private resubscribe(): void {
    this.timer = null;
    if (this.followed.size === 0) return;
    this.logger.warn({ connections: this.followed.size }, 'redis subscribers reconnecting after a failover');
    for (const conn of this.followed) conn.disconnect(true);
  }
}
