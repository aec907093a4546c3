/**
 * The MQTT framing meter behind the broker's packet-size cap: real packets from mqtt-packet's own
 * generator, split at every byte boundary, oversize announcements and malformed lengths; the guard
 * as a stream around another stream, and applied in place to a real TCP socket.
 */
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import {
  guardSocket,
  MqttFrameMeter,
  PacketSizeGuard,
  type FrameViolation,
} from '../../broker/packet-size-guard.js';
import { siteConnect } from '../helpers/site-connect.js';

function publish(payloadBytes: number): Buffer {
  return mqttPacket.generate({
    cmd: 'publish',
    topic: 'N/c0619ab1d2e3/system/0/Serial',
    payload: Buffer.alloc(payloadBytes, 0x61),
    qos: 1,
    messageId: 7,
    retain: false,
    dup: false,
  });
}

const connect = mqttPacket.generate(siteConnect('c0619ab1d2e3', 'secret'));
const ping = mqttPacket.generate({ cmd: 'pingreq' });

describe('MqttFrameMeter', () => {
  test('a stream of valid packets within the limit passes, however it is split', () => {
    const stream = Buffer.concat([connect, publish(200), ping, publish(0), publish(1000), ping]);
    for (let cut = 1; cut < stream.length; cut += 7) {
      const meter = new MqttFrameMeter(2048);
      expect([cut, meter.feed(stream.subarray(0, cut)), meter.feed(stream.subarray(cut))]).toEqual([
        cut,
        null,
        null,
      ]);
    }
    const byteByByte = new MqttFrameMeter(2048);
    for (const byte of stream) expect(byteByByte.feed(Buffer.of(byte))).toBeNull();
  });

  test('the limit counts the whole packet, fixed header included', () => {
    const packet = publish(1000);
    expect(new MqttFrameMeter(packet.length).feed(packet)).toBeNull();
    expect(new MqttFrameMeter(packet.length - 1).feed(packet)).toEqual({
      kind: 'packet-too-large',
      bytes: packet.length,
      max: packet.length - 1,
    });
  });

  test('an oversize packet is refused from its header alone, before any of its body arrives', () => {
    const packet = publish(100_000);
    const meter = new MqttFrameMeter(64 * 1024);
    expect(meter.feed(Buffer.concat([ping, packet.subarray(0, 2)]))).toBeNull();
    expect(meter.feed(packet.subarray(2, 4))).toMatchObject({
      kind: 'packet-too-large',
      bytes: packet.length,
    });
  });

  test('the largest announceable packet (256 MiB) is refused; a fifth length byte is malformed', () => {
    const max = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]);
    expect(new MqttFrameMeter(1024).feed(max)).toEqual({
      kind: 'packet-too-large',
      bytes: 268_435_460,
      max: 1024,
    });
    expect(new MqttFrameMeter(1024).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toEqual({
      kind: 'malformed',
    });
  });

  test('refuses nonsense limits', () => {
    expect(() => new MqttFrameMeter(1)).toThrow(RangeError);
    expect(() => new MqttFrameMeter(1.5)).toThrow(RangeError);
  });
});

describe('PacketSizeGuard', () => {
  function pair(max: number) {
    const inner = new PassThrough();
    const written: Buffer[] = [];
    // The "socket": what the broker writes goes to `written`, what the client sends is `inner`'s readable side.
    const socket = Duplex.from({
      readable: inner,
      writable: new PassThrough().on('data', (c: Buffer) => written.push(c)),
    });
    const violations: FrameViolation[] = [];
    const guard = new PacketSizeGuard(socket, max, (v) => violations.push(v));
    const errors: Error[] = [];
    // aedes listens for errors on its connection; so does every test here.
    guard.on('error', (err: Error) => errors.push(err));
    return { inner, socket, guard, written, violations, errors };
  }

  test('passes packets within the limit through and writes to the socket', async () => {
    const { inner, guard, written } = pair(4096);
    const got: Buffer[] = [];
    guard.on('data', (c: Buffer) => got.push(c));
    inner.write(connect);
    inner.write(publish(300));
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(got)).toEqual(Buffer.concat([connect, publish(300)]));
    await new Promise<void>((resolve) => guard.write(ping, () => resolve()));
    // Writes are held until the end of the event-loop iteration (one socket write per iteration).
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(written)).toEqual(ping);
    guard.destroy();
  });

  test('what the broker writes in one iteration reaches the socket as one write; a destroy right after still sends it', async () => {
    // A socket that records each write it is asked to do (a net.Socket makes one syscall per call).
    const writes: Buffer[][] = [];
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        writes.push([chunk]);
        cb();
      },
      writev(chunks, cb) {
        writes.push(chunks.map((c) => c.chunk as Buffer));
        cb();
      },
    });
    const guard = new PacketSizeGuard(socket, 4096, () => undefined);
    for (let i = 0; i < 5; i++) guard.write(ping);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toHaveLength(1);
    expect(Buffer.concat(writes[0])).toEqual(Buffer.concat(Array<Buffer>(5).fill(ping)));
    // A refused client: CONNACK, then the broker drops the connection in the same tick.
    const connack = Buffer.from([0x20, 0x02, 0x00, 0x05]);
    guard.write(connack);
    guard.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(writes.flat()).subarray(-4)).toEqual(connack);
  });

  test('destroys itself and the socket at the first oversize header, without passing it on', async () => {
    const { inner, socket, guard, violations } = pair(1024);
    const got: Buffer[] = [];
    guard.on('data', (c: Buffer) => got.push(c));
    const closed = new Promise((resolve) => guard.once('close', resolve));
    const pinged = new Promise((resolve) => guard.once('data', resolve));
    inner.write(ping);
    await pinged;
    inner.write(publish(5000));
    await closed;
    expect(violations).toEqual([{ kind: 'packet-too-large', bytes: publish(5000).length, max: 1024 }]);
    expect(Buffer.concat(got)).toEqual(ping);
    expect(socket.destroyed).toBe(true);
  });

  test('the end of the client data ends the guard; destroying the socket destroys the guard', async () => {
    const a = pair(1024);
    const ended = new Promise((resolve) => a.guard.once('end', resolve));
    a.guard.resume();
    a.inner.end();
    await ended;
    a.guard.destroy();

    const b = pair(1024);
    const closed = new Promise((resolve) => b.guard.once('close', resolve));
    b.socket.destroy();
    await closed;
    expect(b.guard.destroyed).toBe(true);
    // The socket's own error on destroy reaches the guard's listener, nothing is thrown.
    expect(b.errors.every((e) => e.name === 'AbortError')).toBe(true);
  });
});

describe('guardSocket (a TCP socket guarded in place)', () => {
  let server: net.Server;
  /** Accepted (server-side) sockets, in order. */
  let accepted: net.Socket[];
  let nextAccepted: ((s: net.Socket) => void)[];
  const clients: net.Socket[] = [];

  beforeAll(async () => {
    accepted = [];
    nextAccepted = [];
    server = net.createServer((s) => {
      accepted.push(s);
      nextAccepted.shift()?.(s);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const c of clients) c.destroy();
    for (const s of accepted) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  /** A connected client socket and the server's side of it. */
  async function connection(): Promise<{ client: net.Socket; socket: net.Socket }> {
    const socket = new Promise<net.Socket>((resolve) => nextAccepted.push(resolve));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    clients.push(client);
    await new Promise((resolve) => client.once('connect', resolve));
    return { client, socket: await socket };
  }

  /** Reads from `socket` the way aedes does ('readable', then read()) until `bytes` have come. */
  function readBytes(socket: net.Socket, bytes: number): Promise<Buffer> {
    const got: Buffer[] = [];
    let n = 0;
    return new Promise((resolve) => {
      const onReadable = () => {
        let chunk: Buffer | null;
        while ((chunk = socket.read() as Buffer | null) !== null) {
          got.push(chunk);
          n += chunk.length;
        }
        if (n >= bytes) {
          socket.off('readable', onReadable);
          resolve(Buffer.concat(got));
        }
      };
      socket.on('readable', onReadable);
    });
  }

  test('packets within the limit are read as sent, however the client splits them', async () => {
    const { client, socket } = await connection();
    const violations: FrameViolation[] = [];
    expect(guardSocket(socket, 4096, (v) => violations.push(v))).toBe(true);
    const stream = Buffer.concat([connect, publish(300), ping, publish(2000)]);
    const read = readBytes(socket, stream.length);
    client.write(stream.subarray(0, 3));
    client.write(stream.subarray(3, 500));
    client.write(stream.subarray(500));
    expect(await read).toEqual(stream);
    expect(violations).toEqual([]);
  });

  test('an oversize header destroys the socket before its bytes are readable, and says which connection', async () => {
    const { client, socket } = await connection();
    const seen: [FrameViolation, Duplex][] = [];
    guardSocket(socket, 1024, (v, conn) => seen.push([v, conn]));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const pinged = readBytes(socket, ping.length);
    client.write(ping);
    expect(await pinged).toEqual(ping);
    const big = publish(5000);
    client.write(big);
    await closed;
    expect(seen).toEqual([[{ kind: 'packet-too-large', bytes: big.length, max: 1024 }, socket]]);
    expect(socket.destroyed).toBe(true);
    // Nothing of the refused packet was buffered for the reader.
    expect(socket.readableLength).toBe(0);
  });

  test('what is written in one iteration goes out as one write; a destroy right after still sends it', async () => {
    const { client, socket } = await connection();
    guardSocket(socket, 4096, () => undefined);
    // The socket's own single and vectored write paths, counted (each is one syscall on a real socket).
    const calls: number[] = [];
    const own = socket as unknown as Record<'_write' | '_writev', (...a: unknown[]) => void>;
    const write1 = own._write.bind(socket);
    const writev = own._writev.bind(socket);
    own._write = (...a) => (calls.push(1), write1(...a));
    own._writev = (...a) => (calls.push((a[0] as unknown[]).length), writev(...a));
    const received = new Promise<Buffer>((resolve) => {
      const got: Buffer[] = [];
      client.on('data', (c: Buffer) => got.push(c));
      client.once('close', () => resolve(Buffer.concat(got)));
    });
    for (let i = 0; i < 5; i++) socket.write(ping);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual([5]);
    // A refused client: CONNACK, then the broker drops the connection in the same tick.
    const connack = Buffer.from([0x20, 0x02, 0x00, 0x05]);
    socket.write(connack);
    socket.destroy();
    expect(await received).toEqual(Buffer.concat([...Array<Buffer>(5).fill(ping), connack]));
  });

  test('a socket with bytes already buffered is left as it is (the meter must see every byte)', async () => {
    const { client, socket } = await connection();
    socket.pause();
    const buffered = new Promise((resolve) => socket.once('readable', resolve));
    client.write(ping);
    await buffered;
    expect(socket.readableLength).toBe(ping.length);
    expect(guardSocket(socket, 1024, () => undefined)).toBe(false);
    expect(Object.hasOwn(socket, 'push')).toBe(false);
    expect(Object.hasOwn(socket, 'write')).toBe(false);
  });
});
