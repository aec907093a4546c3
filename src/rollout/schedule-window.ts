/**
 * When a job may release executions: not before its start time, and only inside its daily
 * maintenance window. Pure functions of an instant; time zones through `Intl` (minute resolution).
 * A window is `[start, end)` in local time and wraps past midnight when end ≤ start (`22:00`–`04:00`);
 * `start === end` would be an empty window and is refused when the request is validated.
 */
import type { DailyWindow, JobSchedule } from '../protocol/index.js';

const HHMM_RE = /^([01]\d|2[0-3]):([0-5]\d)$/;
const MINUTE_MS = 60_000;
/** How far ahead `nextOpening` looks: two days covers every window and any DST shift. */
const LOOKAHEAD_MINUTES = 2 * 24 * 60;

/** Minutes after midnight of `HH:MM`, or null when it is not one. */
export function parseHhMm(value: string): number | null {
  const m = HHMM_RE.exec(value);
  return m ? Number(m[1]) * 60 + Number(m[2]) : null;
}

/** True for `UTC` and every IANA zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Local minutes after midnight of `instant` in `tz`. */
export function localMinutes(instant: number, tz = 'UTC'): number {
  if (tz === 'UTC') {
    const d = new Date(instant);
    return d.getUTCHours() * 60 + d.getUTCMinutes();
  }
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(tz, f);
  }
  let hour = 0;
  let minute = 0;
  for (const part of f.formatToParts(instant)) {
    if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return hour * 60 + minute;
}

/** True when `instant` lies inside the daily window. */
export function inWindow(instant: number, window: DailyWindow): boolean {
  const start = parseHhMm(window.start);
  const end = parseHhMm(window.end);
  if (start === null || end === null) throw new RangeError(`bad window ${window.start}–${window.end}`);
  const t = localMinutes(instant, window.tz);
  return start < end ? t >= start && t < end : t >= start || t < end;
}

/** The first instant at or after `now` inside the window (minute resolution); null if none within two days. */
export function nextOpening(now: number, window: DailyWindow): number | null {
  if (inWindow(now, window)) return now;
  const firstMinute = Math.floor(now / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  for (let i = 0; i < LOOKAHEAD_MINUTES; i++) {
    const t = firstMinute + i * MINUTE_MS;
    if (inWindow(t, window)) return t;
  }
  return null;
}

/**
 * Whether the schedule lets executions be released at `now`, and if not, when it next will
 * (null: never again within the lookahead, which validation makes impossible).
 */
export function scheduleGate(
  now: number,
  schedule: JobSchedule | null,
): { open: true } | { open: false; opensAt: number | null } {
  if (!schedule) return { open: true };
  const startAt = schedule.startAt ? Date.parse(schedule.startAt) : null;
  if (startAt !== null && now < startAt) {
    return { open: false, opensAt: schedule.window ? nextOpening(startAt, schedule.window) : startAt };
  }
  if (!schedule.window || inWindow(now, schedule.window)) return { open: true };
  return { open: false, opensAt: nextOpening(now, schedule.window) };
}
