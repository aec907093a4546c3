/**
 * A TCP endpoint on 127.0.0.1 that forwards each new connection to its current target port, as a DNS
 * name or a virtual IP in front of a server does: moving the target (a failover) sends new
 * connections elsewhere, while connections already made stay with the server they reached. The
 * client → server direction may be replaced (`pipeUp`, default byte for byte); server → client is
 * always byte for byte. Both sockets have TCP_NODELAY.
 */
import net from 'node:net';

export interface TcpForwarder {
  readonly port: number;
  /** Where new connections go (null: refused). */
  target: number | null;
  /** Closes every connection made so far (the endpoint keeps listening). */
  drop(): void;
  close(): Promise<void>;
}

export async function startTcpForwarder(
  target: number | null,
  pipeUp: (client: net.Socket, server: net.Socket) => void = (client, server) => void client.pipe(server),
): Promise<TcpForwarder> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (forwarder.target === null) return client.destroy();
    const upstream = net.connect({ host: '127.0.0.1', port: forwarder.target });
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
      s.on('error', () => undefined);
    }
    pipeUp(client, upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const forwarder: TcpForwarder = {
    port: (server.address() as net.AddressInfo).port,
    target,
    drop() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      forwarder.drop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return forwarder;
}
