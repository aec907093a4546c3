/**
 * CPU time and resident memory of other processes, read from /proc (Linux): the service, the
 * private redis-server, Mosquitto. CPU is utime + stime in clock ticks (USER_HZ, 100 on Linux).
 */
import { readdir, readFile } from 'node:fs/promises';
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

/**
 * The pid of the machine's Mosquitto, or null when it is not running (or not readable): the one its
 * pid file names, else the process named `mosquitto`. The file can be gone while Mosquitto runs: a
 * restart by `kill` and `mosquitto -d` raced the old process's removal of the file once, and a
 * whole two-broker bench failed at its first Mosquitto run.
 */
export async function mosquittoPid(pidFile = '/run/mosquitto/mosquitto.pid'): Promise<number | null> {
  try {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    await readFile(`/proc/${pid}/stat`, 'utf8');
    return pid;
  } catch {
    // Not there: look for it by name.
  }
  const pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).map(Number).sort((a, b) => a - b);
  for (const pid of pids) {
    const name = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
    if (name.trim() === 'mosquitto') return pid;
  }
  return null;
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
