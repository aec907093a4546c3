import { StartWindow } from '../../src/queue/start-window.js';

/** Settles the promise jobs queued so far, so a grant that is due has happened. */
const settle = () => new Promise((r) => setImmediate(r));

test('grants up to its size at once, then one waiter per release, in arrival order', async () => {
  const w = new StartWindow(2);
  const first = w.tryAcquire();
  const second = await w.acquire();
  expect(first).not.toBeNull();
  expect(w.tryAcquire()).toBeNull();
  const granted: string[] = [];
  const c = w.acquire().then((release) => (granted.push('c'), release));
  const d = w.acquire().then((release) => (granted.push('d'), release));
  await settle();
  expect(granted).toEqual([]);
  expect({ starting: w.starting, waiting: w.waiting }).toEqual({ starting: 2, waiting: 2 });

  first!();
  await settle();
  expect(granted).toEqual(['c']);
  expect({ starting: w.starting, waiting: w.waiting }).toEqual({ starting: 2, waiting: 1 });

  // A release is idempotent: the second call frees nothing more.
  first!();
  await settle();
  expect(granted).toEqual(['c']);

  second();
  (await c)();
  (await d)();
  expect({ starting: w.starting, waiting: w.waiting }).toEqual({ starting: 0, waiting: 0 });
  expect(w.tryAcquire()).not.toBeNull();
});

test('size 0 is no window: every start goes at once and nothing is counted', async () => {
  const w = new StartWindow(0);
  const releases = await Promise.all(Array.from({ length: 1000 }, () => w.acquire()));
  expect(w.tryAcquire()).not.toBeNull();
  expect({ starting: w.starting, waiting: w.waiting }).toEqual({ starting: 0, waiting: 0 });
  for (const r of releases) r();
  expect(w.starting).toBe(0);
});

test('an abort lets a waiter go on without a slot; the slot goes to the next waiter', async () => {
  const w = new StartWindow(1);
  const held = w.tryAcquire()!;
  const handover = new AbortController();
  const aborted = w.acquire(handover.signal);
  const next = w.acquire();
  handover.abort();
  const noSlot = await aborted;
  expect(w.waiting).toBe(1);
  noSlot(); // gives back nothing
  expect(w.starting).toBe(1);
  let got = false;
  void next.then(() => (got = true));
  await settle();
  expect(got).toBe(false);
  held();
  await settle();
  expect(got).toBe(true);
  expect(w.starting).toBe(1);
  // Already aborted: no wait at all.
  expect(await w.acquire(AbortSignal.abort())).toBeInstanceOf(Function);
  expect(w.waiting).toBe(0);
});

test('refuses a size that is not a whole number of slots', () => {
  expect(() => new StartWindow(-1)).toThrow(RangeError);
  expect(() => new StartWindow(1.5)).toThrow(RangeError);
});

test('a start that holds its slot past maxHoldMs gives it up to the next waiter', async () => {
  const w = new StartWindow(1, 50);
  const slow = w.tryAcquire()!;
  const t0 = performance.now();
  const next = await w.acquire();
  expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
  expect({ starting: w.starting, waiting: w.waiting }).toEqual({ starting: 1, waiting: 0 });
  slow(); // late: the slot is no longer its to give
  expect(w.starting).toBe(1);
  next();
  expect(w.starting).toBe(0);
});
