/**
 * Small statistics for the benchmark: percentiles of one run's samples, and the median and spread of
 * a figure over several runs.
 */

/** The p-th percentile (0–100) by nearest rank; NaN for no samples. Sorts a copy. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

/** p50, p99 and max of one run's samples. */
export function latencySummary(values: readonly number[]): { p50: number; p99: number; max: number; n: number } {
  if (values.length === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN, n: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1];
  return { p50: at(50), p99: at(99), max: sorted[sorted.length - 1], n: sorted.length };
}

/** One second of a latency measurement: which (counted from the start), its p99, and its sample count. */
export interface SecondP99 {
  second: number;
  p99: number;
  n: number;
}

/**
 * The p99 of each whole second, samples put in seconds (from `startUs`) by when they were taken, in
 * time order; seconds without samples are left out. A high overall p99 shows here as every second
 * slow, or as a few slow bursts (and which seconds they are).
 */
export function p99BySecond(atUs: readonly number[], values: readonly number[], startUs: number): SecondP99[] {
  const seconds = new Map<number, number[]>();
  for (let i = 0; i < values.length; i++) {
    const s = Math.floor((atUs[i] - startUs) / 1e6);
    let bucket = seconds.get(s);
    if (!bucket) seconds.set(s, (bucket = []));
    bucket.push(values[i]);
  }
  return [...seconds.keys()]
    .sort((a, b) => a - b)
    .map((second) => {
      const bucket = seconds.get(second)!;
      return { second, p99: percentile(bucket, 99), n: bucket.length };
    });
}

/**
 * Which seconds these are (counted from the measurement's start), their p99s and the share of the
 * events they hold: `seconds 0, 1 and 19 (p99 91.3, 60.2 and 30.0 ms), 2,310 of 25,550 events`.
 * At most `limit` seconds are named, in time order.
 */
export function describeSeconds(seconds: readonly SecondP99[], totalEvents: number, limit = 8): string {
  const shown = seconds.slice(0, limit);
  const list = (items: string[]) => (items.length > 1 ? `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}` : items.join(''));
  const more = seconds.length > limit ? ` and ${seconds.length - limit} more` : '';
  const events = seconds.reduce((sum, s) => sum + s.n, 0);
  return (
    `second${shown.length > 1 ? 's' : ''} ${list(shown.map((s) => String(s.second)))} ` +
    `(p99 ${list(shown.map((s) => s.p99.toFixed(1)))} ms)${more}, ${events.toLocaleString('en-US')} of ${totalEvents.toLocaleString('en-US')} events`
  );
}

/**
 * How bunched the samples were: for each, how many others were taken within ±`withinUs` of it; the
 * median of those counts. Events arriving at random at the same mean rate have about 2 × rate × window.
 */
export function neighboursMedian(atUs: readonly number[], withinUs: number): number {
  const t = [...atUs].sort((a, b) => a - b);
  const counts: number[] = [];
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < t.length; i++) {
    while (t[lo] < t[i] - withinUs) lo++;
    while (hi < t.length && t[hi] <= t[i] + withinUs) hi++;
    counts.push(hi - lo - 1);
  }
  return percentile(counts, 50);
}

/** A figure over several runs: the median, the smallest and the largest, and every value. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function spread(values: readonly number[]): Spread {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: [...values] };
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], runs: [...values] };
}

/** `12.3 (11.9–12.8)` with `digits` decimals. */
export function formatSpread(s: Spread, digits = 1, unit = ''): string {
  if (!Number.isFinite(s.median)) return 'n/a';
  const f = (v: number) => v.toFixed(digits);
  return s.runs.length > 1 ? `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)})` : `${f(s.median)}${unit}`;
}

/** Rounds for the JSON line: no 15-digit noise. */
export function round(v: number, digits = 2): number {
  if (!Number.isFinite(v)) return v;
  const m = 10 ** digits;
  return Math.round(v * m) / m;
}
