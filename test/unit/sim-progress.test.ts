/** Overall progress bands and the 5 % event throttle. */
import { overallProgress, ProgressThrottle } from '../../devices-sim/progress.js';

test('phases map to bands of the overall percentage', () => {
  expect(overallProgress('downloading', 0)).toBe(0);
  expect(overallProgress('downloading', 0.5)).toBe(30);
  expect(overallProgress('downloading', 1)).toBe(60);
  expect(overallProgress('verifying', 1)).toBe(65);
  expect(overallProgress('installing', 0.5)).toBe(80);
  expect(overallProgress('rebooting', 1)).toBe(99);
  expect(overallProgress('installing', 7)).toBe(95);
});

test('events go out at phase changes and 5 % steps only', () => {
  const t = new ProgressThrottle();
  const emitted = [];
  for (let p = 0; p <= 60; p++) if (t.shouldEmit('downloading', p)) emitted.push(p);
  expect(emitted).toEqual([0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]);
  expect(t.shouldEmit('verifying', 60)).toBe(true);
  expect(t.shouldEmit('verifying', 61)).toBe(false);
});
