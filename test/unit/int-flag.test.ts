/** The small bench scripts' `--name N` flags (bench:matcher, bench:download). */
import { positiveIntFlag } from '../../scripts/lib/int-flag.js';

test('the value after the flag, or the fallback when the flag is absent', () => {
  expect(positiveIntFlag('rounds', 5, ['node', 'x.ts', '--rounds', '9'])).toBe(9);
  expect(positiveIntFlag('rounds', 5, ['node', 'x.ts', '--sites', '9'])).toBe(5);
});

test.each([['0'], ['-3'], ['2.5'], ['many'], [undefined]])('%s is refused with the flag named', (value) => {
  const argv = ['node', 'x.ts', '--rounds', ...(value === undefined ? [] : [value])];
  expect(() => positiveIntFlag('rounds', 5, argv)).toThrow('--rounds must be a positive integer');
});
