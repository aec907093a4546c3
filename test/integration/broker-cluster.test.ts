/**
 * The clustered brokers' emitter (mqemitter-redis on the real Redis): a pattern unsubscribed by its
 * last listener and subscribed by a new one in the same tick must stay subscribed in Redis, as when
 * one worker leaves a site's `P/<id>/out/+` on an instance while another worker joins it there. Its
 * local subscribers are matched by the broker's compact index (subscription-trie.ts), as in one broker.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { SubscriptionTrie } from '../../broker/subscription-trie.js';
import { createClusterEmitter } from '../../src/service/broker-cluster.js';
import { redisOptionsFromUrl } from '../../src/store/redis-connection.js';

interface Packet {
  topic: string;
  payload: Buffer;
}
type Listener = (packet: Packet, done: () => void) => void;
interface Emitter {
  on(topic: string, listener: Listener, done: () => void): void;
  removeListener(topic: string, listener: Listener, done: () => void): void;
  emit(packet: Packet, done: (err?: Error) => void): void;
}

let closeEmitter: (() => Promise<void>) | undefined;
let mq: Emitter;

beforeAll(() => {
  const prefix = `ff-test-cluster-${randomBytes(4).toString('hex')}`;
  const emitter = createClusterEmitter(
    redisOptionsFromUrl('redis://127.0.0.1:6379'),
    `${prefix}:mqtt:`,
    pino({ level: 'silent' }),
  );
  mq = emitter.mq as unknown as Emitter;
  closeEmitter = emitter.close;
});

afterAll(async () => {
  await closeEmitter?.();
});

const on = (topic: string, listener: Listener) =>
  new Promise<void>((resolve) => mq.on(topic, listener, resolve));
const off = (topic: string, listener: Listener) =>
  new Promise<void>((resolve) => mq.removeListener(topic, listener, resolve));
const emit = (packet: Packet) =>
  new Promise<void>((resolve, reject) => mq.emit(packet, (err) => (err ? reject(err) : resolve())));

/** Resolves with the first packet `listener` receives, or rejects after `ms`. */
function receiver(ms: number): { listener: Listener; received: Promise<Packet> } {
  let resolve!: (p: Packet) => void;
  const received = new Promise<Packet>((res, reject) => {
    resolve = res;
    setTimeout(() => reject(new Error(`nothing received within ${ms} ms`)), ms).unref();
  });
  return {
    listener: (packet, done) => {
      resolve(packet);
      done();
    },
    received,
  };
}

test('local subscribers are matched by the compact subscriber index, wildcards included', async () => {
  expect((mq as unknown as { _matcher: unknown })._matcher).toBeInstanceOf(SubscriptionTrie);
  const site = receiver(5000);
  await on('R/0123456789ab/#', site.listener);
  await emit({ topic: 'R/0123456789ab/keepalive', payload: Buffer.from('k') });
  expect((await site.received).topic).toBe('R/0123456789ab/keepalive');
  await off('R/0123456789ab/#', site.listener);
});

test.each(['P/0123456789ab/out/+', 'N/0123456789ab/system/0/Serial'])(
  'a filter whose last listener leaves as a new one comes in the same tick keeps receiving (%s)',
  async (filter) => {
    const first = receiver(5000);
    await on(filter, first.listener);
    const topic = filter.replace('+', 'rpc-1');
    await emit({ topic, payload: Buffer.from('one') });
    expect((await first.received).topic).toBe(topic);

    const second = receiver(3000);
    await Promise.all([off(filter, first.listener), on(filter, second.listener)]);
    await emit({ topic, payload: Buffer.from('two') });
    const got = await second.received;
    expect(got.payload.toString()).toBe('two');
    await off(filter, second.listener);
  },
);
