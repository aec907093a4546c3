/**
 * A small HTTP listener's start and stop (the metrics listener, the broker auth hook, the WebSocket
 * port of a broker without the api role): bound port back once it listens, and a close that also ends
 * kept-alive connections, so stopping never waits for a scraper's or a broker's idle socket.
 */
import type http from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface HttpListener {
  /** The bound port (the one asked for, or the free one picked for 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Listens with `server` on `port` at `host` (`backlog`: pending connections the kernel queues; Node's
 * default when absent); rejects if it cannot bind.
 */
export async function listenHttp(
  server: http.Server | https.Server,
  port: number,
  host: string,
  backlog?: number,
): Promise<HttpListener> {
  // Longer than the usual load balancer's and Prometheus' idle timeouts: they close first.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
