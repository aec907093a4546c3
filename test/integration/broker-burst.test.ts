/**
 * A burst of messages nobody subscribed to (10,000 GX heartbeats) while deliveries are pending must
 * not overflow the broker's stack: with aedes' default emitter (100 deliveries in flight, the rest
 * queued) the queue drained recursively and the process died (mcollina/mqemitter#204).
 */
import type { PublishPacket } from 'aedes';
import { BrokerHarness } from '../helpers/broker-harness.js';
import { waitFor } from '../helpers/service-harness.js';

let h: BrokerHarness;

beforeAll(async () => {
  h = await BrokerHarness.start({});
});

afterAll(async () => {
  await h?.close();
});

function packet(topic: string): PublishPacket {
  return { cmd: 'publish', topic, payload: Buffer.from('{"value":1}'), qos: 0, dup: false, retain: false };
}

test('20,000 unrouted messages behind 200 pending deliveries are all handled', async () => {
  const aedes = h.broker.aedes;
  const held: (() => void)[] = [];
  await new Promise<void>((resolve) => aedes.subscribe('hold/#', (_p: unknown, cb: () => void) => held.push(cb), resolve));

  let published = 0;
  const HELD = 200;
  const QUIET = 20_000;
  for (let i = 0; i < HELD; i++) aedes.publish(packet(`hold/${i}`), () => published++);
  for (let i = 0; i < QUIET; i++) aedes.publish(packet(`N/c0619ab1d2e3/heartbeat/${i}`), () => published++);
  await waitFor(() => held.length === HELD, 10_000, 'the held deliveries');

  // Releasing the pending deliveries lets whatever waited behind them run.
  for (const release of held.splice(0)) release();
  await waitFor(() => published === HELD + QUIET, 10_000, 'every publish to complete');
  expect(published).toBe(HELD + QUIET);
});
