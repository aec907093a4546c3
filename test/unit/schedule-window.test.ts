import {
  inWindow,
  isTimeZone,
  localMinutes,
  nextOpening,
  parseHhMm,
  scheduleGate,
} from '../../src/rollout/schedule-window.js';

const at = (iso: string) => Date.parse(iso);

describe('maintenance windows', () => {
  test.each([
    ['00:00', 0],
    ['02:30', 150],
    ['23:59', 1439],
    ['24:00', null],
    ['2:30', null],
    ['02:60', null],
    ['ab:cd', null],
  ])('parseHhMm(%s) = %p', (text, minutes) => {
    expect(parseHhMm(text)).toBe(minutes);
  });

  // [window, instant, inside?]
  test.each([
    [{ start: '02:00', end: '04:00' }, '2026-03-02T01:59:59Z', false],
    [{ start: '02:00', end: '04:00' }, '2026-03-02T02:00:00Z', true],
    [{ start: '02:00', end: '04:00' }, '2026-03-02T03:59:59Z', true],
    [{ start: '02:00', end: '04:00' }, '2026-03-02T04:00:00Z', false],
    [{ start: '22:00', end: '04:00' }, '2026-03-02T23:30:00Z', true],
    [{ start: '22:00', end: '04:00' }, '2026-03-02T00:30:00Z', true],
    [{ start: '22:00', end: '04:00' }, '2026-03-02T12:00:00Z', false],
    // Amsterdam is UTC+1 in winter, UTC+2 in summer.
    [{ start: '02:00', end: '04:00', tz: 'Europe/Amsterdam' }, '2026-01-15T01:30:00Z', true],
    [{ start: '02:00', end: '04:00', tz: 'Europe/Amsterdam' }, '2026-07-15T01:30:00Z', true],
    [{ start: '02:00', end: '04:00', tz: 'Europe/Amsterdam' }, '2026-07-15T02:30:00Z', false],
  ])('%j at %s → %p', (window, iso, inside) => {
    expect(inWindow(at(iso), window)).toBe(inside);
  });

  test('the next opening: now when inside, else the first minute inside', () => {
    const w = { start: '02:00', end: '04:00' };
    expect(nextOpening(at('2026-03-02T02:10:00Z'), w)).toBe(at('2026-03-02T02:10:00Z'));
    expect(nextOpening(at('2026-03-02T01:30:20Z'), w)).toBe(at('2026-03-02T02:00:00Z'));
    expect(nextOpening(at('2026-03-02T04:00:00Z'), w)).toBe(at('2026-03-03T02:00:00Z'));
    expect(nextOpening(at('2026-01-15T12:00:00Z'), { ...w, tz: 'Europe/Amsterdam' })).toBe(
      at('2026-01-16T01:00:00Z'),
    );
  });

  test('a spring-forward night: a window in the skipped hour opens when the clocks allow', () => {
    // 2026-03-29 in Amsterdam: 02:00 CET becomes 03:00 CEST; 02:00–02:59 local does not exist.
    const opening = nextOpening(at('2026-03-28T12:00:00Z'), {
      start: '02:00',
      end: '03:30',
      tz: 'Europe/Amsterdam',
    });
    expect(localMinutes(opening!, 'Europe/Amsterdam')).toBe(3 * 60);
    expect(opening).toBe(at('2026-03-29T01:00:00Z'));
  });

  test('time zones are checked', () => {
    expect(isTimeZone('UTC')).toBe(true);
    expect(isTimeZone('America/Los_Angeles')).toBe(true);
    expect(isTimeZone('Mars/Olympus_Mons')).toBe(false);
  });

  test('the schedule gate combines the start time and the window', () => {
    const window = { start: '02:00', end: '04:00' };
    expect(scheduleGate(at('2026-03-02T10:00:00Z'), null)).toEqual({ open: true });
    expect(scheduleGate(at('2026-03-02T10:00:00Z'), { startAt: '2026-03-02T11:00:00Z' })).toEqual({
      open: false,
      opensAt: at('2026-03-02T11:00:00Z'),
    });
    expect(scheduleGate(at('2026-03-02T12:00:00Z'), { startAt: '2026-03-02T11:00:00Z' })).toEqual({
      open: true,
    });
    expect(scheduleGate(at('2026-03-02T03:00:00Z'), { window })).toEqual({ open: true });
    expect(scheduleGate(at('2026-03-02T03:00:00Z'), { startAt: '2026-03-02T03:30:00Z', window })).toEqual({
      open: false,
      opensAt: at('2026-03-02T03:30:00Z'),
    });
    expect(scheduleGate(at('2026-03-02T03:00:00Z'), { startAt: '2026-03-02T05:00:00Z', window })).toEqual({
      open: false,
      opensAt: at('2026-03-03T02:00:00Z'),
    });
  });
});
