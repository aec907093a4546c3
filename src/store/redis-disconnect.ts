/**
 * A Redis client disconnected while it waits to reconnect ends, as any other disconnected client does.
 *
 * ioredis (redis/ioredis#1247, still so in 5.11 and 6.0) leaves such a client behind: when Redis went
 * away and the next attempt is on a timer (status `reconnecting`), `disconnect()` clears the timer but
 * neither emits `end` nor leaves `reconnecting`, and commands queued for the reconnection never settle.
 * Whoever waits for `end` after disconnecting waits forever: BullMQ's `Worker.close()` for its
 * blocking connection, mqemitter-redis' `close()` for its two. A service stopped during a Redis outage,
 * or right after a failover while a connection was between attempts, hung in its shutdown.
 *
 * The fix is made per client, and carried to the clients `duplicate()` makes of it (BullMQ makes its
 * blocking connections so): after such a disconnect the client is ended the way ioredis ends one,
 * queued commands rejected with its "Connection is closed." and `end` emitted.
 */

/** The part of an ioredis client (any major in the tree) the fix touches; the last three are ioredis' own internals. */
interface EndableClient {
  status: string;
  disconnect(reconnect?: boolean): void;
  duplicate(...args: never[]): unknown;
  manuallyClosing: boolean;
  setStatus(status: string, arg?: unknown): void;
  flushQueue(error: Error): void;
}

/** ioredis' own message for commands of a closed connection. */
const CONNECTION_CLOSED = 'Connection is closed.';

/** Makes `client` (and every duplicate of it) end when disconnected while waiting to reconnect; returns it. */
export function endOnDisconnect<T extends object>(client: T): T {
  const c = client as unknown as EndableClient;
  const disconnect = c.disconnect.bind(c);
  c.disconnect = (reconnect = false) => {
    const waiting = !reconnect && c.status === 'reconnecting';
    disconnect(reconnect);
    // Still "reconnecting" with its timer gone: nothing will ever end it but us.
    if (waiting && c.status === 'reconnecting') {
      c.manuallyClosing = false;
      c.setStatus('end');
      c.flushQueue(new Error(CONNECTION_CLOSED));
    }
  };
  const duplicate = c.duplicate.bind(c) as (...args: never[]) => object;
  c.duplicate = (...args: never[]) => endOnDisconnect(duplicate(...args));
  return client;
}
