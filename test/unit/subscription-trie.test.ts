/**
 * SubscriptionTrie against the qlobber it replaces inside mqemitter: random adds, removes and matches
 * applied to both give the same values in the same order (duplicates included) and the same errors;
 * useSubscriptionTrie puts it into a real mqemitter, which then delivers as before.
 */
import fc from 'fast-check';
import mqemitter from 'mqemitter';
import { SubscriptionTrie, useSubscriptionTrie } from '../../broker/subscription-trie.js';

interface Matcher {
  add(topic: string, value: number): unknown;
  remove(topic: string, value?: number): unknown;
  match(topic: string): number[];
}

/** The qlobber a fresh mqemitter matches with: the reference. */
function qlobber(matchEmptyLevels: boolean): Matcher {
  return (mqemitter({ matchEmptyLevels }) as unknown as { _matcher: Matcher })._matcher;
}

function trie(matchEmptyLevels: boolean): Matcher {
  return new SubscriptionTrie<number>({
    separator: '/',
    wildcardOne: '+',
    wildcardSome: '#',
    matchEmptyLevels,
  });
}

/**
 * Few distinct levels, so filters and topics overlap often; `$x`, empty levels and wildcards included,
 * and `ab` beside `a` (a level that starts with another is not it).
 */
const level = fc.constantFrom('a', 'ab', 'b', 'c', '', '$x', '+', '#');
const filter = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));
const topic = fc
  .array(fc.constantFrom('a', 'ab', 'b', 'c', '', '$x', '+', '#'), { minLength: 1, maxLength: 6 })
  .map((l) => l.join('/'));

type Op =
  | { op: 'add'; filter: string; value: number }
  | { op: 'remove'; filter: string; value: number | undefined }
  | { op: 'match'; topic: string };

const ops = fc.array(
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant('add' as const),
        filter,
        value: fc.integer({ min: 1, max: 4 }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('remove' as const),
        filter,
        value: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      }),
    },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('match' as const), topic }) },
  ),
  { maxLength: 60 },
);

/** What an operation returns or throws, comparable across both. */
function outcome(m: Matcher, o: Op): unknown {
  try {
    if (o.op === 'add') return void m.add(o.filter, o.value);
    if (o.op === 'remove') return void m.remove(o.filter, o.value);
    return m.match(o.topic);
  } catch (err) {
    return { error: (err as Error).message };
  }
}

describe('SubscriptionTrie', () => {
  test.each([true, false])(
    'answers every add, remove and match as qlobber does (empty levels matched: %s)',
    (matchEmptyLevels) => {
      fc.assert(
        fc.property(ops, (list) => {
          const reference = qlobber(matchEmptyLevels);
          const subject = trie(matchEmptyLevels);
          for (const o of list) expect(outcome(subject, o)).toEqual(outcome(reference, o));
          // And afterwards every topic of the alphabet still matches alike (what is left after removes).
          for (const t of ['a', 'a/b', 'a//c', '$x/a', 'b/c/a/b', '', '/'])
            expect(subject.match(t)).toEqual(reference.match(t));
        }),
        { numRuns: 2000 },
      );
    },
  );

  test('the same errors as qlobber for too many levels or too many #', () => {
    const deep = Array.from({ length: 101 }, () => 'a').join('/');
    for (const m of [qlobber(true), trie(true)]) {
      expect(() => m.match(deep)).toThrow('too many words');
      expect(() => m.add(deep, 1)).toThrow('too many words');
      expect(() => m.add('#/#/#/#', 1)).toThrow('too many wildcard somes');
      // 100 levels are allowed, 101 are not, however short the topic.
      expect(m.match('/'.repeat(99))).toEqual([]);
      expect(() => m.match('/'.repeat(100))).toThrow('too many words');
    }
  });

  test('site-shaped filters: values in order, one removed at a time, levels pruned', () => {
    const t = new SubscriptionTrie<number>({
      separator: '/',
      wildcardOne: '+',
      wildcardSome: '#',
      matchEmptyLevels: true,
    });
    t.add('R/c0619ab1d2e3/#', 1).add('R/c0619ab1d2e3/#', 2).add('R/+/keepalive', 3).add('#', 4);
    expect(t.match('R/c0619ab1d2e3/keepalive')).toEqual([4, 1, 2, 3]);
    t.remove('R/c0619ab1d2e3/#', 1);
    expect(t.match('R/c0619ab1d2e3/keepalive')).toEqual([4, 2, 3]);
    t.remove('R/c0619ab1d2e3/#');
    t.remove('R/+/keepalive', 3);
    t.remove('#', 4);
    expect(t.match('R/c0619ab1d2e3/keepalive')).toEqual([]);
    expect((t as unknown as { root: { children: unknown } }).root.children).toBeNull();
  });
});

describe('useSubscriptionTrie', () => {
  test('a real mqemitter gets the trie and delivers through it, wildcards and removals included', async () => {
    const mq = mqemitter({ concurrency: 0, matchEmptyLevels: true });
    expect(useSubscriptionTrie(mq)).toBe(true);
    expect((mq as unknown as { _matcher: unknown })._matcher).toBeInstanceOf(SubscriptionTrie);
    const got: string[] = [];
    const site = (packet: { topic: string }, cb: () => void) => {
      got.push(`site ${packet.topic}`);
      cb();
    };
    const all = (packet: { topic: string }, cb: () => void) => {
      got.push(`all ${packet.topic}`);
      cb();
    };
    mq.on('R/c0619ab1d2e3/#', site);
    mq.on('N/+/system/0/Serial', all);
    const emit = (topic: string) =>
      new Promise<void>((resolve) => mq.emit({ topic, payload: Buffer.from('x') } as never, () => resolve()));
    await emit('R/c0619ab1d2e3/keepalive');
    await emit('N/c0619ab1d2e3/system/0/Serial');
    await emit('R/other/keepalive');
    await new Promise<void>((resolve) => mq.removeListener('R/c0619ab1d2e3/#', site, () => resolve()));
    await emit('R/c0619ab1d2e3/keepalive');
    expect(got).toEqual(['site R/c0619ab1d2e3/keepalive', 'all N/c0619ab1d2e3/system/0/Serial']);
  });

  test('an emitter already holding subscriptions, or with no qlobber, is left as it is', () => {
    const mq = mqemitter();
    mq.on('a/b', () => undefined);
    const before = (mq as unknown as { _matcher: unknown })._matcher;
    expect(useSubscriptionTrie(mq)).toBe(false);
    expect((mq as unknown as { _matcher: unknown })._matcher).toBe(before);
    expect(useSubscriptionTrie({})).toBe(false);
  });
});
