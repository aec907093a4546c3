import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { setImmediate as nextIteration } from 'node:timers/promises';
import { coalesceWrites, IterationCork } from '../../src/net/write-coalescing.js';

/** A stream that records each write it performs (one entry per _write/_writev call). */
function recorder(): { stream: Writable; writes: string[][] } {
  const writes: string[][] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push([chunk.toString()]);
      cb();
    },
    writev(chunks, cb) {
      writes.push(chunks.map((c) => (c.chunk as Buffer).toString()));
      cb();
    },
  });
  return { stream, writes };
}

test('writes of one event-loop iteration leave as one write, in order; the next iteration starts a new one', async () => {
  const { stream, writes } = recorder();
  const cork = new IterationCork(stream);
  for (const s of ['a', 'b', 'c']) {
    cork.hold();
    stream.write(s);
  }
  expect(writes).toEqual([]);
  await nextIteration();
  expect(writes).toEqual([['a', 'b', 'c']]);
  cork.hold();
  stream.write('d');
  await nextIteration();
  expect(writes).toEqual([['a', 'b', 'c'], ['d']]);
});

test('a write from a later callback of the same iteration joins the batch (aedes delivers each message in its own setImmediate)', async () => {
  const { stream, writes } = recorder();
  const cork = new IterationCork(stream);
  await new Promise<void>((resolve) => {
    setImmediate(() => (cork.hold(), stream.write('1')));
    setImmediate(() => (cork.hold(), stream.write('2')));
    setImmediate(() => resolve());
  });
  expect(writes).toEqual([]);
  await nextIteration();
  expect(writes).toEqual([['1', '2']]);
});

test('many streams held in one iteration are all released at its end, each with one write', async () => {
  const streams = Array.from({ length: 50 }, () => recorder());
  const corks = streams.map((r) => new IterationCork(r.stream));
  streams.forEach((r, i) => {
    corks[i].hold();
    r.stream.write(`a${i}`);
    corks[i].hold();
    r.stream.write(`b${i}`);
  });
  expect(streams.every((r) => r.writes.length === 0)).toBe(true);
  await nextIteration();
  streams.forEach((r, i) => expect(r.writes).toEqual([[`a${i}`, `b${i}`]]));
});

test('a write to another stream while held streams are released leaves in the next iteration, not lost', async () => {
  const first = recorder();
  const second = recorder();
  const corkFirst = new IterationCork(first.stream);
  const corkSecond = new IterationCork(second.stream);
  // Writing to `first` (when it is released) makes its sink write to `second`, like a broker relaying.
  const relay = new Writable({
    write(chunk: Buffer, _enc, cb) {
      corkSecond.hold();
      second.stream.write(`relayed ${chunk.toString()}`);
      cb();
    },
  });
  const corkRelay = new IterationCork(relay);
  corkRelay.hold();
  relay.write('x');
  corkFirst.hold();
  first.stream.write('y');
  await nextIteration();
  expect(first.writes).toEqual([['y']]);
  expect(second.writes).toEqual([]);
  await nextIteration();
  expect(second.writes).toEqual([['relayed x']]);
});

test('coalesceWrites: writes of one iteration leave as one write; a stream coalesced twice still does, once', async () => {
  const { stream, writes } = recorder();
  expect(coalesceWrites(stream)).toBe(stream);
  expect(coalesceWrites(stream)).toBe(stream);
  for (const s of ['a', 'b', 'c']) stream.write(s);
  expect(writes).toEqual([]);
  await nextIteration();
  expect(writes).toEqual([['a', 'b', 'c']]);
});

test('flush writes what is held at once', () => {
  const { stream, writes } = recorder();
  const cork = new IterationCork(stream);
  cork.hold();
  stream.write('x');
  cork.flush();
  expect(writes).toEqual([['x']]);
});

test('on a real socket: everything arrives, and what was written just before destroy() still leaves', async () => {
  let arrived!: (text: string) => void;
  const everything = new Promise<string>((resolve) => (arrived = resolve));
  const server = net.createServer((s) => {
    const received: Buffer[] = [];
    s.on('data', (d: Buffer) => received.push(d));
    s.on('close', () => arrived(Buffer.concat(received).toString()));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  try {
    const socket = coalesceWrites(net.createConnection({ port, host: '127.0.0.1', noDelay: true }));
    await once(socket, 'connect');
    for (let i = 0; i < 100; i++) socket.write(`m${i};`);
    socket.write('last');
    socket.destroy();
    expect(await everything).toBe(Array.from({ length: 100 }, (_, i) => `m${i};`).join('') + 'last');
  } finally {
    server.close();
  }
});
