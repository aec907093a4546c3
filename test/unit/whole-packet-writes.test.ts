/**
 * whole-packet-writes.ts: with it, mqtt-packet's `writeToStream` writes each packet as one buffer
 * holding exactly the bytes the original wrote field by field (`generate` still uses the original),
 * passes the stream's backpressure on, and refuses a packet it cannot encode as the original does:
 * the stream destroyed with the reason, nothing of the packet written. Packets written to a stream
 * in one synchronous run still leave together (one `writev` after the tick), except on a stream
 * that holds its writes for the iteration itself, which is left uncorked.
 */
import { Duplex, Writable } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import { PacketSizeGuard } from '../../broker/packet-size-guard.js';
import { useWholePacketWrites } from '../../src/mqtt/whole-packet-writes.js';
import { coalesceWrites } from '../../src/net/write-coalescing.js';

/** Records every write; its `write` answers `accept` (false: the stream's buffer is full). */
class Recorder extends Writable {
  readonly writes: unknown[] = [];
  accept = true;
  override write(chunk: unknown): boolean {
    this.writes.push(chunk);
    return this.accept;
  }
}

/** [what, packet, encoding options]; every row has all three (test.each would take a missing third for `done`). */
const PACKETS: [string, mqttPacket.Packet, { protocolVersion?: number }][] = [
  [
    'a QoS 0 publish, string topic and payload',
    { cmd: 'publish', topic: 'N/abc/x', payload: '{"value":1}', qos: 0, dup: false, retain: false },
    {},
  ],
  [
    'a QoS 1 retained publish, buffer payload',
    {
      cmd: 'publish',
      topic: 'fleetflash/jobs/j1/devices/d',
      payload: Buffer.from('{"seq":3,"état":"ok"}'),
      qos: 1,
      messageId: 42,
      dup: false,
      retain: true,
    },
    {},
  ],
  [
    'a publish with a UTF-8 topic and an empty payload',
    { cmd: 'publish', topic: 'P/é/out/1', payload: '', qos: 0, dup: false, retain: true },
    {},
  ],
  [
    'a publish of 200 KB',
    {
      cmd: 'publish',
      topic: 't',
      payload: Buffer.alloc(200_000, 7),
      qos: 1,
      messageId: 9,
      dup: true,
      retain: false,
    },
    {},
  ],
  ['a PUBACK', { cmd: 'puback', messageId: 65535 }, {}],
  [
    'a SUBSCRIBE',
    {
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [
        { topic: 'P/+/out/#', qos: 1 },
        { topic: 'N/a/system/0/Serial', qos: 0 },
      ],
    },
    {},
  ],
  ['a SUBACK', { cmd: 'suback', messageId: 3, granted: [1, 0, 128] }, {}],
  ['an UNSUBSCRIBE', { cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['P/+/out/#'] }, {}],
  [
    'a CONNECT with a will',
    {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: 'site-1',
      keepalive: 30,
      username: 'u',
      password: Buffer.from('p'),
      will: { topic: 'N/a/x', payload: Buffer.from('{}'), qos: 1, retain: true },
    },
    {},
  ],
  ['a CONNACK', { cmd: 'connack', returnCode: 5, sessionPresent: false }, {}],
  ['a PINGRESP', { cmd: 'pingresp' }, {}],
  [
    'an MQTT 5 publish with properties',
    {
      cmd: 'publish',
      topic: 't/5',
      payload: 'x',
      qos: 1,
      messageId: 1,
      dup: false,
      retain: false,
      properties: { messageExpiryInterval: 60, userProperties: { a: 'b' } },
    },
    { protocolVersion: 5 },
  ],
];

beforeAll(() => {
  expect(useWholePacketWrites()).toBe(true);
});

test.each(PACKETS)('%s leaves in one write, the same bytes as the original', (_name, packet, opts) => {
  const stream = new Recorder();
  expect(mqttPacket.writeToStream(packet, stream as never, opts)).toBe(true);
  expect(stream.writes).toHaveLength(1);
  const [chunk] = stream.writes;
  expect(Buffer.isBuffer(chunk)).toBe(true);
  expect((chunk as Buffer).equals(mqttPacket.generate(packet, opts))).toBe(true);
  expect(stream.destroyed).toBe(false);
});

test('packets one after another each come out whole and alone (nothing carried over)', () => {
  const stream = new Recorder();
  for (const [, packet, opts] of PACKETS) mqttPacket.writeToStream(packet, stream as never, opts);
  expect(stream.writes.map((c) => (c as Buffer).toString('hex'))).toEqual(
    PACKETS.map(([, packet, opts]) => mqttPacket.generate(packet, opts).toString('hex')),
  );
});

test('the stream’s backpressure is the answer: false when its write says so', () => {
  const stream = new Recorder();
  stream.accept = false;
  expect(mqttPacket.writeToStream(PACKETS[0][1], stream as never)).toBe(false);
  expect(stream.writes).toHaveLength(1);
});

test('a packet the encoder refuses destroys the stream with its reason and writes none of it', async () => {
  const stream = new Recorder();
  const destroyed = new Promise<Error>((resolve) => stream.on('error', resolve));
  const bad = {
    cmd: 'publish',
    topic: 't',
    payload: 'x',
    qos: 1,
    dup: false,
    retain: false,
  } as mqttPacket.Packet; // QoS 1 without a message id
  expect(mqttPacket.writeToStream(bad, stream as never)).toBe(false);
  expect(stream.writes).toHaveLength(0);
  expect((await destroyed).message).toBe('Invalid messageId');
  // The next packet to another stream is not affected by the refusal.
  const next = new Recorder();
  mqttPacket.writeToStream(PACKETS[4][1], next as never);
  expect((next.writes[0] as Buffer).equals(mqttPacket.generate(PACKETS[4][1]))).toBe(true);
});

test('a stream already ended or destroyed gets nothing and raises no error', async () => {
  for (const close of [(s: Writable) => s.end(), (s: Writable) => s.destroy()]) {
    const stream = new Recorder();
    const errors: Error[] = [];
    stream.on('error', (err) => errors.push(err));
    close(stream);
    expect(mqttPacket.writeToStream(PACKETS[1][1], stream as never)).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(stream.writes).toHaveLength(0);
    expect(errors).toEqual([]);
  }
});

test('installing twice keeps one wrapper; mqtt.js’s cacheNumbers setting reaches the original', () => {
  const first = mqttPacket.writeToStream;
  expect(useWholePacketWrites()).toBe(true);
  expect(mqttPacket.writeToStream).toBe(first);
  expect(mqttPacket.writeToStream.cacheNumbers).toBe(true);
  mqttPacket.writeToStream.cacheNumbers = false;
  try {
    expect(mqttPacket.writeToStream.cacheNumbers).toBe(false);
    const stream = new Recorder();
    mqttPacket.writeToStream(PACKETS[4][1], stream as never);
    expect((stream.writes[0] as Buffer).equals(mqttPacket.generate(PACKETS[4][1]))).toBe(true);
  } finally {
    mqttPacket.writeToStream.cacheNumbers = true;
  }
});

/** A stream that records each batch its socket-like end would get (one `_writev` or `_write` call). */
function batchRecorder(): { stream: Writable; batches: string[][] } {
  const batches: string[][] = [];
  const stream = new Writable({
    writev(chunks, callback) {
      batches.push(chunks.map((c) => (c.chunk as Buffer).toString('hex')));
      callback();
    },
    write(chunk: Buffer, _encoding, callback) {
      batches.push([chunk.toString('hex')]);
      callback();
    },
  });
  return { stream, batches };
}

test('packets written in one run leave together once the tick ends, one writev, one packet per piece', async () => {
  const { stream, batches } = batchRecorder();
  const burst = PACKETS.slice(0, 3);
  for (const [, packet, opts] of burst) mqttPacket.writeToStream(packet, stream as never, opts);
  expect(stream.writableCorked).toBe(1);
  expect(batches).toEqual([]);
  await new Promise((resolve) => process.nextTick(resolve));
  expect(stream.writableCorked).toBe(0);
  expect(batches).toEqual([
    burst.map(([, packet, opts]) => mqttPacket.generate(packet, opts).toString('hex')),
  ]);
});

test('a stream that holds its writes for the iteration itself is not corked for the tick as well', async () => {
  const { stream, batches } = batchRecorder();
  coalesceWrites(stream);
  mqttPacket.writeToStream(PACKETS[4][1], stream as never);
  expect(stream.writableCorked).toBe(1); // coalesceWrites' own hold, released at the end of the iteration
  await new Promise((resolve) => process.nextTick(resolve));
  expect(batches).toEqual([]);
  await new Promise((resolve) => setImmediate(resolve));
  expect(stream.writableCorked).toBe(0);
  expect(batches).toEqual([[mqttPacket.generate(PACKETS[4][1]).toString('hex')]]);
});

test('nor is the broker’s guard around a WebSocket stream, which holds its writes to that stream itself', async () => {
  const written: Buffer[] = [];
  const inner = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk);
      callback();
    },
  });
  const guard = new PacketSizeGuard(inner, 1024, () => undefined);
  mqttPacket.writeToStream(PACKETS[4][1], guard as never);
  expect(guard.writableCorked).toBe(0);
  expect(inner.writableCorked).toBe(1); // the guard's own hold on the stream beneath
  await new Promise((resolve) => setImmediate(resolve));
  expect(inner.writableCorked).toBe(0);
  expect(written).toEqual([mqttPacket.generate(PACKETS[4][1])]);
  guard.destroy();
});
