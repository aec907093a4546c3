/** Pure pieces of the API: Range decisions and the failed-authentication limiter (with a fake clock). */
import { FailedAuthLimiter } from '../../src/api/auth-rate-limit.js';
import { decideRange } from '../../src/api/byte-range.js';

describe('decideRange', () => {
  test.each([
    [undefined, 100, { kind: 'full' }],
    ['bytes=0-9', 100, { kind: 'partial', start: 0, end: 9 }],
    ['bytes=90-', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=90-1000', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-10', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-1000', 100, { kind: 'partial', start: 0, end: 99 }],
    ['bytes = 5 - 6', 100, { kind: 'partial', start: 5, end: 6 }],
    ['bytes=99-99', 100, { kind: 'partial', start: 99, end: 99 }],
    ['bytes=100-', 100, { kind: 'unsatisfiable' }],
    ['bytes=100-200', 100, { kind: 'unsatisfiable' }],
    ['bytes=-0', 100, { kind: 'unsatisfiable' }],
    ['bytes=0-', 0, { kind: 'unsatisfiable' }],
    ['bytes=9-5', 100, { kind: 'full' }],
    ['bytes=0-1,5-6', 100, { kind: 'full' }],
    ['bytes=-', 100, { kind: 'full' }],
    ['items=0-5', 100, { kind: 'full' }],
    ['bytes=a-b', 100, { kind: 'full' }],
  ])('%s of %d bytes', (header, size, expected) => {
    expect(decideRange(header, size)).toEqual(expected);
  });
});

describe('FailedAuthLimiter', () => {
  test('blocks after maxFailures within the window, per address, and forgets after it', () => {
    let now = 1_000_000;
    const limiter = new FailedAuthLimiter({ maxFailures: 3, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(limiter.blockedForMs('10.0.0.1')).toBe(0);
      limiter.recordFailure('10.0.0.1');
    }
    expect(limiter.blockedForMs('10.0.0.1')).toBe(60_000);
    expect(limiter.blockedForMs('10.0.0.2')).toBe(0);
    now += 59_999;
    expect(limiter.blockedForMs('10.0.0.1')).toBe(1);
    now += 1;
    expect(limiter.blockedForMs('10.0.0.1')).toBe(0);
  });

  test('keeps at most maxTracked addresses', () => {
    let now = 0;
    const limiter = new FailedAuthLimiter({ maxFailures: 1, windowMs: 1000, maxTracked: 2, now: () => now });
    limiter.recordFailure('a');
    limiter.recordFailure('b');
    limiter.recordFailure('c'); // evicts the oldest live window
    expect(limiter.blockedForMs('a')).toBe(0);
    expect(limiter.blockedForMs('b')).toBe(1000);
    expect(limiter.blockedForMs('c')).toBe(1000);
    now = 5000;
    limiter.recordFailure('d'); // sweeps the expired ones
    expect(limiter.blockedForMs('d')).toBe(1000);
  });
});
