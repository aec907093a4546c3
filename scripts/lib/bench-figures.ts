/**
 * The figures one benchmark run yields, how each is summarised over runs (median and spread), how
 * the embedded broker compares with Mosquitto on each, and the targets of the performance issue.
 */
import { formatSpread, round, spread, type Spread } from './bench-stats.js';
import type { BrokerMode } from './bench-args.js';

/** One run's figures, flat, by name (see FIGURES for units and direction). */
export type RunFigures = Record<FigureName, number>;

interface FigureDef {
  label: string;
  unit: string;
  digits: number;
  /** Which way is better: the embedded/Mosquitto ratio is taken so that > 1 means "embedded is worse". */
  better: 'higher' | 'lower';
  /** Compared between brokers (figures that exist only on one side, or are not the product's, are not). */
  compare: boolean;
}

export const FIGURES = {
  execPerSec: { label: 'executions/s (sustained, 10–90 %)', unit: '/s', digits: 0, better: 'higher', compare: true },
  execPerSecOverall: { label: 'executions/s (devices ÷ wall)', unit: '/s', digits: 0, better: 'higher', compare: true },
  wallMs: { label: 'wall, POST → last terminal', unit: ' ms', digits: 0, better: 'lower', compare: true },
  succeededPct: { label: 'succeeded', unit: ' %', digits: 1, better: 'higher', compare: false },
  serviceCpuMsPerExec: { label: 'CPU per execution, service process', unit: ' ms', digits: 2, better: 'lower', compare: false },
  serviceBrokerCpuMsPerExec: { label: 'CPU per execution, service + broker', unit: ' ms', digits: 2, better: 'lower', compare: true },
  redisCpuMsPerExec: { label: 'CPU per execution, Redis', unit: ' ms', digits: 2, better: 'lower', compare: false },
  simCpuMsPerExec: { label: 'CPU per execution, simulator', unit: ' ms', digits: 2, better: 'lower', compare: false },
  peakInflight: { label: 'peak executions in flight', unit: '', digits: 0, better: 'higher', compare: false },
  statusP50Ms: { label: 'status latency p50', unit: ' ms', digits: 1, better: 'lower', compare: true },
  statusP99Ms: { label: 'status latency p99', unit: ' ms', digits: 1, better: 'lower', compare: true },
  statusMaxMs: { label: 'status latency max', unit: ' ms', digits: 1, better: 'lower', compare: false },
  statusInflight: { label: 'executions in flight while measured', unit: '', digits: 0, better: 'higher', compare: false },
  statusUpdating: { label: 'devices updating meanwhile (simulator)', unit: '', digits: 0, better: 'higher', compare: false },
  statusSecondP99MedianMs: { label: 'status latency p99 of the median second', unit: ' ms', digits: 1, better: 'lower', compare: true },
  statusNeighbours: { label: 'device events sent within ±1 ms of one (median)', unit: '', digits: 0, better: 'lower', compare: false },
  statusSecondsUnderTargetPct: { label: 'seconds with status latency p99 < 25 ms', unit: ' %', digits: 0, better: 'higher', compare: false },
  statusSamples: { label: 'latency samples', unit: '', digits: 0, better: 'higher', compare: false },
  launchP50Ms: { label: 'POST /api/jobs p50', unit: ' ms', digits: 1, better: 'lower', compare: true },
  launchP99Ms: { label: 'POST /api/jobs p99', unit: ' ms', digits: 1, better: 'lower', compare: true },
  launchesPerSec: { label: 'jobs accepted/s', unit: '/s', digits: 0, better: 'higher', compare: true },
  rssPerSiteKb: { label: 'RSS per connected site, service (after GC)', unit: ' KB', digits: 1, better: 'lower', compare: false },
  rssPerSiteRawKb: { label: 'RSS per connected site, service (as found)', unit: ' KB', digits: 1, better: 'lower', compare: false },
  rssPerSiteWithBrokerKb: { label: 'RSS per connected site, service + broker (after GC)', unit: ' KB', digits: 1, better: 'lower', compare: true },
  rssPerInflightKb: { label: 'RSS per in-flight execution, service (after GC)', unit: ' KB', digits: 1, better: 'lower', compare: false },
  redisKeptKbPerExec: { label: 'Redis memory kept per execution (used_memory)', unit: ' KB', digits: 2, better: 'lower', compare: false },
  redisJobKbPerExec: { label: "  of it the job's own records, kept until JOB_RETENTION_MS", unit: ' KB', digits: 2, better: 'lower', compare: false },
  connectPerSec: { label: 'site connections/s (whole fleet)', unit: '/s', digits: 0, better: 'higher', compare: true },
  deliveriesPerExec: { label: 'MQTT deliveries per execution', unit: '', digits: 1, better: 'lower', compare: false },
  bullmqEmptyJobsPerSec: { label: 'ceiling: BullMQ empty jobs/s', unit: '/s', digits: 0, better: 'higher', compare: false },
  brokerRawMsgsPerSec: { label: 'ceiling: broker raw msgs/s', unit: '/s', digits: 0, better: 'higher', compare: false },
  execVsBullmq: { label: 'executions/s ÷ BullMQ empty jobs/s', unit: '', digits: 3, better: 'higher', compare: false },
  brokerShare: { label: 'deliveries/s ÷ broker raw msgs/s', unit: '', digits: 3, better: 'lower', compare: false },
} as const satisfies Record<string, FigureDef>;

export type FigureName = keyof typeof FIGURES;

/** The status latency target of the performance issue: p99 under this, at 1,000 executions in flight. */
export const STATUS_P99_TARGET_MS = 25;

export type Summary = Record<FigureName, Spread>;

export function summarize(runs: readonly RunFigures[]): Summary {
  const out = {} as Summary;
  for (const name of Object.keys(FIGURES) as FigureName[]) out[name] = spread(runs.map((r) => r[name]));
  return out;
}

/** Human lines of one broker's summary. */
export function summaryLines(mode: BrokerMode, s: Summary): string[] {
  const lines = [`${mode} broker — median (min–max) over ${s.execPerSec.runs.length} run(s):`];
  for (const [name, def] of Object.entries(FIGURES) as [FigureName, FigureDef][]) {
    lines.push(`  ${def.label.padEnd(44)} ${formatSpread(s[name], def.digits, def.unit)}`);
  }
  return lines;
}

/** Embedded vs Mosquitto per compared figure: > 1 means the embedded broker is worse by that factor. */
export function ratios(embedded: Summary, mosquitto: Summary): Partial<Record<FigureName, number>> {
  const out: Partial<Record<FigureName, number>> = {};
  for (const [name, def] of Object.entries(FIGURES) as [FigureName, FigureDef][]) {
    if (!def.compare) continue;
    const e = embedded[name].median;
    const m = mosquitto[name].median;
    out[name] = def.better === 'lower' ? e / m : m / e;
  }
  return out;
}

export interface TargetResult {
  target: string;
  value: string;
  met: boolean | null;
  note?: string;
}

/** The targets, judged on the embedded broker's medians (null: this run cannot tell). */
export function targets(sites: number, s: Summary, r: Partial<Record<FigureName, number>> | null): TargetResult[] {
  const full = sites >= 10_000;
  const needs10k = full ? undefined : 'needs --sites 10000';
  const updating = s.statusUpdating.median >= 950;
  const worstRatio = r ? Math.max(...Object.values(r).filter((v): v is number => Number.isFinite(v))) : Number.NaN;
  const worstName = r ? (Object.entries(r).find(([, v]) => v === worstRatio)?.[0] ?? '') : '';
  return [
    {
      target: '10,000 devices in one job, 100 % succeeded, < 40 s wall',
      value: `${sites} devices, ${round(s.succeededPct.median, 2)} % succeeded, ${Math.round(s.wallMs.median)} ms`,
      met: full ? s.succeededPct.min === 100 && s.wallMs.median < 40_000 : null,
      note: needs10k,
    },
    {
      target: '≥ 250 executions/s sustained',
      value: `${Math.round(s.execPerSec.median)}/s`,
      met: full ? s.execPerSec.median >= 250 : null,
      note: needs10k,
    },
    {
      target: 'status latency p99 < 25 ms at 1,000 concurrent executions',
      value: `${round(s.statusP99Ms.median, 1)} ms at ${Math.round(s.statusInflight.median)} in flight, ${Math.round(s.statusUpdating.median)} devices updating`,
      // Concurrent on the devices, not only in the job's count: executions waiting for a start slot do not count.
      met: s.statusInflight.median >= 950 ? updating && s.statusP99Ms.median < STATUS_P99_TARGET_MS : null,
      note:
        s.statusInflight.median < 950
          ? 'needs ≥ 1,000 sites and --latency-concurrency 1000'
          : updating
            ? undefined
            : `only ${Math.round(s.statusUpdating.median)} devices updating at once: the box does not keep 1,000 going at this time scale`,
    },
    {
      target: 'service RSS < 30 KB per connected site',
      value: `${round(s.rssPerSiteKb.median, 1)} KB`,
      met: s.rssPerSiteKb.median < 30,
    },
    {
      target: 'embedded broker within 1.2× of Mosquitto on every figure',
      value: r ? `worst ${round(worstRatio, 2)}× (${worstName})` : 'not measured',
      met: r ? worstRatio <= 1.2 : null,
      note: r ? undefined : 'needs --broker both',
    },
  ];
}
