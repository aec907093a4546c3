/**
 * CPU time and resident memory of other processes, read from /proc (Linux): the service, the
 * private redis-server, Mosquitto. CPU is utime + stime in clock ticks (USER_HZ, 100 on Linux).
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';

/** USER_HZ: Linux reports /proc times in 1/100 s on every architecture that matters here. */
const TICKS_PER_SEC = 100;

export interface ProcSample {
  /** CPU time used so far, ms. */
  cpuMs: number;
  /** Resident set size, bytes. */
  rss: number;
}

/** CPU and RSS of `pid` now. */
export async function procSample(pid: number): Promise<ProcSample> {
  const [stat, status] = await Promise.all([
    readFile(`/proc/${pid}/stat`, 'utf8'),
    readFile(`/proc/${pid}/status`, 'utf8'),
  ]);
  // The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuMs: ((utime + stime) * 1000) / TICKS_PER_SEC, rss: rssKb * 1024 };
}

/** Summed samples of several processes (the service's processes, or service + broker). */
export async function procSamples(pids: readonly number[]): Promise<ProcSample> {
  const all = await Promise.all(pids.map(procSample));
  return all.reduce((a, b) => ({ cpuMs: a.cpuMs + b.cpuMs, rss: a.rss + b.rss }), { cpuMs: 0, rss: 0 });
}

/** The pid of the machine's Mosquitto, or null when it is not running (or not readable). */
export async function mosquittoPid(): Promise<number | null> {
  try {
    const pid = Number((await readFile('/run/mosquitto/mosquitto.pid', 'utf8')).trim());
    await readFile(`/proc/${pid}/stat`, 'utf8');
    return pid;
  } catch {
    return null;
  }
}

/** What the summary prints about the machine. */
export function machineInfo(): { cores: number; cpu: string; node: string; memGb: number; load1: number } {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model ?? 'unknown',
    node: process.version,
    memGb: Math.round(os.totalmem() / 1024 ** 3),
    load1: Number(os.loadavg()[0].toFixed(2)),
  };
}

/**
 * Waits until `pids` together use less than `maxCorePct` % of one core over a `windowMs` window, so a
 * measurement does not pay for the previous one's aftermath (completed BullMQ jobs, retained records,
 * garbage). Gives up after `timeoutMs`; returns the milliseconds it waited and the last reading.
 */
export async function settle(
  pids: readonly number[],
  { maxCorePct = 35, windowMs = 1000, timeoutMs = 30_000 }: { maxCorePct?: number; windowMs?: number; timeoutMs?: number } = {},
): Promise<{ waitedMs: number; corePct: number; settled: boolean }> {
  const t0 = Date.now();
  for (;;) {
    const before = (await procSamples(pids)).cpuMs;
    await new Promise((r) => setTimeout(r, windowMs));
    const corePct = (100 * ((await procSamples(pids)).cpuMs - before)) / windowMs;
    const waitedMs = Date.now() - t0;
    if (corePct < maxCorePct) return { waitedMs, corePct, settled: true };
    if (waitedMs >= timeoutMs) return { waitedMs, corePct, settled: false };
  }
}
