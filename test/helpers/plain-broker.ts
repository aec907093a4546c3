/**
 * A plain in-process Aedes broker on a free port, without authentication or ACLs: enough for
 * testing the simulator's dialect without the project's broker.
 */
import net from 'node:net';
import { Aedes } from 'aedes';

export interface PlainBroker {
  url: string;
  port: number;
  aedes: Aedes;
  close(): Promise<void>;
}

export interface PlainBrokerOptions {
  /** Default 0: a free port. Give a port to restart a broker where clients expect it. */
  port?: number;
  /** Optional password check (username, password) → allowed. Default: everyone. */
  authenticate?: (username: string | undefined, password: string | undefined) => boolean;
}

export async function startPlainBroker(options: PlainBrokerOptions = {}): Promise<PlainBroker> {
  const aedes = await Aedes.createBroker();
  const check = options.authenticate;
  if (check) {
    aedes.authenticate = (_client, username, password, done) => {
      const ok = check(username, password?.toString('utf8'));
      done(ok ? null : Object.assign(new Error('bad credentials'), { returnCode: 4 }), ok);
    };
  }
  const server = net.createServer((socket) => {
    // Without it every hop waits ~40 ms for Nagle + delayed ACK.
    socket.setNoDelay(true);
    aedes.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    aedes,
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
