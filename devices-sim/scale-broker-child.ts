/**
 * The broker for `scale-check.ts`, in its own process so the simulator's and the broker's memory can
 * be measured apart: plain Aedes (argument `aedes`, the default), or fleetflash's embedded broker
 * (`fleetflash`: broker/broker.ts, every site accepted as itself, its ACL and hooks in force). Talks
 * to its parent over IPC: sends `{port}` once listening, answers `'stats'` with `{rss, heapUsed,
 * external, clients}` (after a full GC when started with `--expose-gc`).
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import '../src/quiet-debug.js';
import net from 'node:net';
import { Aedes } from 'aedes';
import mqttPacket from 'mqtt-packet';
import { pino } from 'pino';
import { createBroker } from '../broker/broker.js';

interface ScaleBroker {
  port: number;
  clients(): number;
  close(): Promise<void>;
}

async function plainAedes(): Promise<ScaleBroker> {
  const aedes = await Aedes.createBroker();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    clients: () => aedes.connectedClients,
    close: () => new Promise((resolve) => aedes.close(() => server.close(() => resolve()))),
  };
}

async function fleetflashBroker(): Promise<ScaleBroker> {
  const broker = await createBroker({
    // Every site is who it says it is: the measurement is the broker's, not the site registry's.
    authenticate: async ({ username }) => (username ? { kind: 'site', portalId: username } : null),
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
  const port = await broker.listen(0, '127.0.0.1');
  return { port, clients: () => broker.connectedClients(), close: () => broker.close() };
}

// mqtt-packet builds its cache of 65,536 two-byte numbers (~6 MB) on its first write: built now, it is
// in the first sample and not counted per connection.
mqttPacket.generate({ cmd: 'pingresp' });
const broker = process.argv[2] === 'fleetflash' ? await fleetflashBroker() : await plainAedes();
process.send?.({ port: broker.port });
process.on('message', (message) => {
  if (message === 'stats') {
    (globalThis as { gc?: () => void }).gc?.();
    const m = process.memoryUsage();
    process.send?.({ rss: m.rss, heapUsed: m.heapUsed, external: m.external, clients: broker.clients() });
  } else if (message === 'stop') {
    void broker.close().then(() => process.exit(0));
  }
});
