import { getEventListeners } from 'node:events';
import { onAbort } from '../../src/abort-listeners.js';

test('callbacks run once on abort in registration order; canceled ones do not run', () => {
  const ac = new AbortController();
  const calls: string[] = [];
  onAbort(ac.signal, () => calls.push('a'));
  const cancelB = onAbort(ac.signal, () => calls.push('b'));
  onAbort(ac.signal, () => calls.push('c'));
  cancelB();
  cancelB();
  ac.abort();
  ac.abort();
  expect(calls).toEqual(['a', 'c']);
});

test('the same function registered twice runs twice, and cancelling one registration keeps the other', () => {
  const ac = new AbortController();
  let n = 0;
  const fn = () => n++;
  onAbort(ac.signal, fn);
  const cancel = onAbort(ac.signal, fn);
  onAbort(ac.signal, fn);
  cancel();
  ac.abort();
  expect(n).toBe(2);
});

test('a signal aborted already runs the callback at once; no signal never runs it', () => {
  const ac = new AbortController();
  ac.abort();
  let n = 0;
  const cancel = onAbort(ac.signal, () => n++);
  expect(n).toBe(1);
  cancel();
  onAbort(undefined, () => n++)();
  expect(n).toBe(1);
});

test('a callback registered while the abort runs its callbacks runs at once', () => {
  const ac = new AbortController();
  const calls: string[] = [];
  onAbort(ac.signal, () => {
    calls.push('first');
    onAbort(ac.signal, () => calls.push('late'));
  });
  ac.abort();
  expect(calls).toEqual(['first', 'late']);
});

test('thousands of registrations put one listener on the signal (each add stays O(1))', () => {
  const ac = new AbortController();
  let n = 0;
  const cancels = Array.from({ length: 5000 }, () => onAbort(ac.signal, () => n++));
  expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
  for (const cancel of cancels.slice(0, 1000)) cancel();
  ac.abort();
  expect(n).toBe(4000);
});
