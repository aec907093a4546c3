/**
 * CPU time and resident memory of other processes, read from /proc (Linux): the service, the
 * private redis-server, Mosquitto. CPU is utime + stime in clock ticks (USER_HZ, 100 on Linux).
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
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

/** Where the machine's Mosquitto listens (/etc/mosquitto/mosquitto.conf) and its pid file. */
export const MACHINE_MOSQUITTO_PORT = 1883;
const MACHINE_MOSQUITTO_PID_FILE = '/run/mosquitto/mosquitto.pid';

/**
 * The pid of the Mosquitto listening on `port` (on any local address), or null when nothing is. Its
 * CPU and memory count as the broker's, so it is the process that holds the listening socket, not
 * any process named mosquitto (another one, set up differently, may run beside the machine's). The
 * sockets of another user's process are readable by root only: for the machine's Mosquitto the
 * bench then falls back to its pid file, and to its name.
 */
export async function mosquittoPid(port = MACHINE_MOSQUITTO_PORT): Promise<number | null> {
  return (await listeningPid(port)) ?? (port === MACHINE_MOSQUITTO_PORT ? machineMosquittoPid() : null);
}

/** The pid of the process with a TCP socket listening on `port`, or null (none, or not readable). */
export async function listeningPid(port: number): Promise<number | null> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st … uid timeout inode: the port is the local address's hex tail.
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      if (parseInt(f[1].slice(f[1].lastIndexOf(':') + 1), 16) === port) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return null;
  for (const pid of await numericDirs('/proc')) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (link.startsWith('socket:[') && inodes.has(link.slice(8, -1))) return pid;
    }
  }
  return null;
}

/**
 * The pid of the machine's Mosquitto, or null when it is not running (or not readable): the one its
 * pid file names, else the only process named `mosquitto` (none when several are). The file can be
 * gone while Mosquitto runs: a restart by `kill` and `mosquitto -d` raced the old process's removal
 * of the file once, and a whole two-broker bench failed at its first Mosquitto run.
 */
export async function machineMosquittoPid(pidFile = MACHINE_MOSQUITTO_PID_FILE): Promise<number | null> {
  try {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    await readFile(`/proc/${pid}/stat`, 'utf8');
    return pid;
  } catch {
    // Not there: look for it by name.
  }
  const named: number[] = [];
  for (const pid of await numericDirs('/proc')) {
    const name = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
    if (name.trim() === 'mosquitto') named.push(pid);
  }
  // With several, the name does not say which is the machine's.
  return named.length === 1 ? named[0] : null;
}

async function numericDirs(dir: string): Promise<number[]> {
  return (await readdir(dir))
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .sort((a, b) => a - b);
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
