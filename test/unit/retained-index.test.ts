/**
 * The broker's retained-message index: a filter finds exactly the topics MQTT matching says it
 * should (checked against the protocol module's `topicMatches` on random topics and filters), each
 * once, and deleting prunes without losing neighbours.
 */
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { RetainedIndex, retainedCopy, withRetainedIndex } from '../../broker/retained-index.js';
import { topicMatches } from '../../src/protocol/index.js';

function matches(index: RetainedIndex<string>, filter: string): string[] {
  return [...index.match(filter)].sort();
}

/** The size of every Map of children in the index's tree (its private nodes, walked from the root). */
function mapSizes(index: RetainedIndex<string>): number[] {
  type Node = { children: Node | Map<string, Node> | null };
  const sizes: number[] = [];
  const visit = (n: Node) => {
    if (n.children instanceof Map) {
      sizes.push(n.children.size);
      for (const c of n.children.values()) visit(c);
    } else if (n.children) visit(n.children);
  };
  visit((index as unknown as { root: Node }).root);
  return sizes;
}

describe('RetainedIndex', () => {
  const topics = [
    'N/c0619ab1d2e3/system/0/Serial',
    'N/d41d8cd98f00/system/0/Serial',
    'fleetflash/jobs/j1/status',
    'fleetflash/jobs/j1/devices/a.solarcharger.256',
    'fleetflash/devices/a.solarcharger.256',
    'sport',
    'sport/tennis',
    'a//b',
    '/leading',
    '$SYS/broker/uptime',
  ];
  const index = new RetainedIndex<string>();
  for (const t of topics) index.set(t, t);

  it.each([
    ['N/+/system/0/Serial', ['N/c0619ab1d2e3/system/0/Serial', 'N/d41d8cd98f00/system/0/Serial']],
    ['R/c0619ab1d2e3/#', []],
    ['N/c0619ab1d2e3/#', ['N/c0619ab1d2e3/system/0/Serial']],
    ['fleetflash/jobs/j1/#', ['fleetflash/jobs/j1/devices/a.solarcharger.256', 'fleetflash/jobs/j1/status']],
    ['sport/#', ['sport', 'sport/tennis']],
    ['sport/+', ['sport/tennis']],
    ['a/+/b', ['a//b']],
    ['+/leading', ['/leading']],
    ['#', topics.filter((t) => !t.startsWith('$')).sort()],
    ['+/broker/uptime', []],
    ['$SYS/#', ['$SYS/broker/uptime']],
    ['sport/tennis/#', ['sport/tennis']],
  ])('%s', (filter, expected) => {
    expect(matches(index, filter)).toEqual([...expected].sort());
  });

  // Random topics and filters over a few levels, empty and `$` ones included.
  const level = fc.constantFrom('a', 'b', '', '$x', 'c');
  const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'));
  const filter = fc
    .tuple(fc.array(fc.constantFrom('a', 'b', '', '+', '$x'), { minLength: 0, maxLength: 3 }), fc.boolean())
    .map(([l, hash]) => [...l, ...(hash ? ['#'] : [])].join('/'))
    .filter((f) => f.length > 0);

  it('agrees with topicMatches on random topics and filters', () => {
    fc.assert(
      fc.property(fc.uniqueArray(topic, { maxLength: 30 }), filter, (ts, f) => {
        const idx = new RetainedIndex<string>();
        for (const t of ts) idx.set(t, t);
        expect(matches(idx, f)).toEqual(ts.filter((t) => topicMatches(f, t)).sort());
      }),
    );
  });

  it('agrees with topicMatches after random sets and deletes, and keeps no one-entry Map', () => {
    const op = fc.tuple(fc.boolean(), topic);
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), filter, (ops, f) => {
        const idx = new RetainedIndex<string>();
        const model = new Set<string>();
        for (const [add, t] of ops) {
          if (add) {
            idx.set(t, t);
            model.add(t);
          } else {
            expect(idx.delete(t)).toBe(model.delete(t));
          }
        }
        expect(idx.size).toBe(model.size);
        expect(matches(idx, f)).toEqual([...model].filter((t) => topicMatches(f, t)).sort());
        for (const t of model) expect(idx.get(t)).toBe(t);
        expect(mapSizes(idx).filter((n) => n < 2)).toEqual([]);
      }),
    );
  });

  it('deletes one topic and keeps the rest, pruning empty branches', () => {
    const idx = new RetainedIndex<string>();
    idx.set('a/b/c', 'abc');
    idx.set('a/b', 'ab');
    expect(idx.delete('a/b/c')).toBe(true);
    expect(idx.delete('a/b/c')).toBe(false);
    expect(matches(idx, '#')).toEqual(['ab']);
    expect(idx.delete('a/b')).toBe(true);
    expect(idx.size).toBe(0);
    expect(matches(idx, '#')).toEqual([]);
    idx.set('a/b', 'again');
    expect(idx.get('a/b')).toBe('again');
  });
});

describe('withRetainedIndex', () => {
  function fakePersistence() {
    return {
      storeRetained: (_packet: {
        cmd: 'publish';
        qos: 0 | 1 | 2;
        topic: string;
        payload: Buffer;
      }): Promise<void> => Promise.reject(new Error('replaced')),
      createRetainedStream: (_pattern: string): Readable => Readable.from([]),
      createRetainedStreamCombi: (_patterns: string[]): Readable => Readable.from([]),
    };
  }
  const read = async (s: Readable) => (await s.toArray()).map((p: { topic: string }) => p.topic).sort();

  it('stores, replaces and (empty payload) deletes retained packets; streams each match once', async () => {
    const p = withRetainedIndex(fakePersistence());
    await p.storeRetained({
      cmd: 'publish',
      qos: 0,
      topic: 'N/x/system/0/Serial',
      payload: Buffer.from('1'),
    });
    await p.storeRetained({ cmd: 'publish', qos: 0, topic: 'N/x/a', payload: Buffer.from('1') });
    await p.storeRetained({ cmd: 'publish', qos: 0, topic: 'N/x/a', payload: Buffer.from('2') });
    expect(await read(p.createRetainedStreamCombi(['N/x/#', 'N/+/a']))).toEqual([
      'N/x/a',
      'N/x/system/0/Serial',
    ]);
    await p.storeRetained({ cmd: 'publish', qos: 0, topic: 'N/x/a', payload: Buffer.alloc(0) });
    expect(await read(p.createRetainedStream('N/x/#'))).toEqual(['N/x/system/0/Serial']);
  });
});

describe('retainedCopy', () => {
  const packet = (payload: Buffer) => ({ cmd: 'publish' as const, topic: 'N/x/a', payload, qos: 0 as const });

  it('keeps text as a string of the same bytes, not as a view into the read it arrived in', () => {
    const read = Buffer.from('N/x/a{"value":"Grüße 😀"}N/x/b{}');
    const payload = read.subarray(5, read.indexOf('}') + 1);
    const kept = retainedCopy(packet(payload));
    expect(typeof kept.payload).toBe('string');
    expect(Buffer.from(kept.payload as string)).toEqual(payload);
  });

  it('keeps anything else in a buffer of its own, not in a slab of the shared pool', () => {
    const payload = Buffer.from([0xff, 0xfe, 0x00, 0xc3]); // not UTF-8; cut from the pool
    expect(payload.buffer.byteLength).toBeGreaterThan(payload.length);
    const kept = retainedCopy(packet(payload));
    expect(Buffer.isBuffer(kept.payload)).toBe(true);
    expect(kept.payload).toEqual(payload);
    expect((kept.payload as Buffer).buffer.byteLength).toBe(payload.length);
  });
});
