/**
 * A plain Aedes broker in its own process for `scale-check.ts`, so the simulator's and the broker's
 * memory can be measured apart. Talks to its parent over IPC: sends `{port}` once listening,
 * answers `'stats'` with `{rss, heapUsed, clients}`.
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import '../src/quiet-debug.js';
import net from 'node:net';
import { Aedes } from 'aedes';

const aedes = await Aedes.createBroker();
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  aedes.handle(socket);
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as net.AddressInfo).port });
});
process.on('message', (message) => {
  if (message === 'stats') {
    const m = process.memoryUsage();
    process.send?.({ rss: m.rss, heapUsed: m.heapUsed, clients: aedes.connectedClients });
  } else if (message === 'stop') {
    aedes.close(() => server.close(() => process.exit(0)));
  }
});
