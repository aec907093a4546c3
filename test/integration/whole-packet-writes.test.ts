/**
 * On real sockets, the broker (aedes) and the service's client (mqtt.js) hand each MQTT packet to
 * their socket in one write (whole-packet-writes.ts, installed by createBroker and connectMqtt):
 * both load the one mqtt-packet the wrapper replaced. Counted on the broker's side of a subscriber's
 * connection and on a publisher's client socket; field by field, a PUBLISH was five writes or more.
 */
import type { Writable } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import { BrokerHarness, MessageLog, SERVICE_ACCOUNT } from '../helpers/broker-harness.js';

const COUNT = 20;

/** Counts the writes made on `stream` from now on, and parses what they carry into packets. */
function countWrites(stream: Writable): { writes: number; packets: mqttPacket.Packet[] } {
  const seen = { writes: 0, packets: [] as mqttPacket.Packet[] };
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (p) => seen.packets.push(p));
  const write = stream.write;
  stream.write = function (this: Writable, chunk: unknown, ...rest: unknown[]) {
    seen.writes++;
    parser.parse(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as Writable['write'];
  return seen;
}

let h: BrokerHarness;

beforeAll(async () => {
  h = await BrokerHarness.start({ svc: SERVICE_ACCOUNT });
});

afterAll(async () => {
  await h.close();
});

test('every packet the broker sends a subscriber, and the client publishes, is one write', async () => {
  const subscriber = await h.connect('tcp', 'svc', 'svc-whole-sub');
  await subscriber.subscribeAsync('whole/#', { qos: 1 });
  const log = new MessageLog(subscriber);
  // aedes' table of connected clients (lib/aedes.js), which its typings do not declare.
  const { clients } = h.broker.aedes as unknown as { clients: Record<string, { conn: Writable }> };
  const atBroker = countWrites(clients['svc-whole-sub'].conn);

  const publisher = await h.connect('tcp', 'svc', 'svc-whole-pub');
  const atClient = countWrites(publisher.stream as unknown as Writable);
  await Promise.all(
    Array.from({ length: COUNT }, (_, i) =>
      publisher.publishAsync(`whole/${i}`, JSON.stringify({ i, pad: 'x'.repeat(i * 10) }), { qos: 1 }),
    ),
  );
  await log.next(`whole/${COUNT - 1}`);

  expect(log.topics()).toEqual(Array.from({ length: COUNT }, (_, i) => `whole/${i}`));
  expect(atClient.packets.filter((p) => p.cmd === 'publish')).toHaveLength(COUNT);
  expect(atClient.writes).toBe(atClient.packets.length);
  expect(atBroker.packets.filter((p) => p.cmd === 'publish')).toHaveLength(COUNT);
  expect(atBroker.writes).toBe(atBroker.packets.length);
});
