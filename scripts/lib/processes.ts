/**
 * Real OS processes for chaos runs and multi-process tests: a private redis-server (with AOF, so a
 * restart loses nothing) and fleetflash roles started from the sources, each killable and restartable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Ports {@link freePort} handed out in this process (their users may not have bound them yet). */
const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 (the OS picks; released before returning), never one this process got
 * before: the OS may pick a just-released port again, and two calls in a row (a service's inspector
 * and metrics ports) once got the same one, so the second listener failed with EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True once something accepts TCP connections on 127.0.0.1:`port`. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Every {@link ManagedProcess} started in this script (stopping one that has exited does nothing). */
const started = new Set<ManagedProcess>();
/** How long a script that was told to stop waits for its children's own shutdown before killing them. */
const CHILD_STOP_GRACE_MS = 5_000;
let handlersInstalled = false;
let signalled = false;

/** True once this script was told to stop by a signal and is stopping its children (their exits are expected). */
export function stoppingOnSignal(): boolean {
  return signalled;
}

/** Clean-ups a script told to stop by a signal runs before it stops what is left of its children. */
const signalCleanUps = new Set<() => Promise<void>>();
/** How long those clean-ups may take together (a bench's: its processes' own shutdown, then Mosquitto's retained messages). */
const SIGNAL_CLEAN_UP_MS = 60_000;

/**
 * Runs `cleanUp` if a signal stops the script while it is registered (until the returned function
 * is called): for what stopping the children does not undo, such as the retained messages a bench
 * run leaves in a Mosquitto, which stays up. It runs first, so it can stop processes in its own order;
 * every child still running after it is stopped as usual.
 */
export function onSignalCleanUp(cleanUp: () => Promise<void>): () => void {
  stopChildrenOnSignal();
  signalCleanUps.add(cleanUp);
  return () => void signalCleanUps.delete(cleanUp);
}

/** Waits for `work`, `ms` at most; `onLate` runs when the time ran out first. */
async function within(work: Promise<unknown>, ms: number, onLate?: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      onLate?.();
      resolve();
    }, ms);
  });
  await Promise.race([work, late]);
  clearTimeout(timer);
}

function runSignalCleanUps(): Promise<void> {
  const all = Promise.allSettled([...signalCleanUps].map((f) => f())).then((results) => {
    for (const r of results) if (r.status === 'rejected') console.error('clean-up after the signal failed:', r.reason);
  });
  return within(all, SIGNAL_CLEAN_UP_MS, () =>
    console.error(`clean-up after the signal still running after ${SIGNAL_CLEAN_UP_MS} ms: stopping its processes`),
  );
}

/**
 * A script told to stop (SIGINT, SIGTERM, SIGHUP: Ctrl-C, `kill`, `timeout`) stops its children
 * first: they are not in the foreground process group then (only Ctrl-C reaches them itself), and a
 * bench or chaos run killed by `timeout` left its redis-server and service processes running,
 * busying the cores the next run measures. It runs its {@link onSignalCleanUp} clean-ups, then gives
 * each child still running {@link ManagedProcess.kill}: SIGTERM, SIGKILL after
 * {@link CHILD_STOP_GRACE_MS}; then the script exits with 128 + the signal's number, as the default
 * action would.
 */
function stopChildrenOnSignal(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // `on`, not `once`: the same signal often arrives twice (from the shell or `timeout` to the whole
    // process group, and relayed by npm and tsx), and a second one must not end the clean-up.
    process.on(signal, () => {
      if (signalled) return;
      signalled = true;
      void runSignalCleanUps()
        // A command that could not start may never report an exit: the wait is bounded.
        .then(() => within(Promise.all([...started].map((p) => p.kill('SIGTERM', CHILD_STOP_GRACE_MS))), CHILD_STOP_GRACE_MS + 1_000))
        .then(() => process.exit(128 + os.constants.signals[signal]));
    });
  }
}

/** A child process that can be killed and started again with the same command. */
export class ManagedProcess {
  child: ChildProcess | null = null;
  private log: WriteStream | null = null;
  starts = 0;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly logFile: string | null,
    /** Resolves once the process is ready to serve. */
    private readonly ready: () => Promise<boolean>,
  ) {}

  async start(timeoutMs = 30_000): Promise<void> {
    this.log ??= this.logFile ? createWriteStream(this.logFile, { flags: 'a' }) : null;
    const child = spawn(this.command, this.args, { cwd: ROOT, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.starts++;
    stopChildrenOnSignal();
    started.add(this);
    let exited = false;
    child.once('exit', () => (exited = true));
    for (const s of [child.stdout, child.stderr]) {
      if (this.log) s?.pipe(this.log, { end: false });
      else s?.resume();
    }
    await until(async () => {
      if (exited) throw new Error(`${this.name} exited during start-up (see ${this.logFile ?? 'its output'})`);
      return this.ready();
    }, timeoutMs, `${this.name} to be ready`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal` and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 25_000): Promise<void> {
    const child = this.child;
    if (!child || !this.alive()) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** SIGTERM, and SIGKILL after 25 s, or after {@link CHILD_STOP_GRACE_MS} once a signal stops the script. */
  async stop(): Promise<void> {
    // Ctrl-C reaches a bench's redis-server too, and its worker then waits for Redis until killed.
    await this.kill('SIGTERM', signalled ? CHILD_STOP_GRACE_MS : 25_000);
    this.log?.end();
    this.log = null;
  }
}

/** redis-server on its own port with AOF (`appendfsync always`): a restart keeps every write. */
export function redisServer(port: number, dir: string, logFile: string | null): ManagedProcess {
  return new ManagedProcess(
    `redis:${port}`,
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'no'],
    process.env,
    logFile,
    () => portOpen(port),
  );
}

/** True once the Redis (or Redis Sentinel) on `port` answers PING. */
export function redisAnswers(port: number): () => Promise<boolean> {
  return async () => {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  };
}

/** True once a fleetflash process's `/healthz` on `port` (loopback) answers 200. */
export function healthzAnswers(port: number | string): () => Promise<boolean> {
  return () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
}

/** redis-server on its own port keeping nothing on disk (a benchmark's, a replica's); `args` are added. */
export function volatileRedisServer(port: number, dir: string, args: string[] = []): ManagedProcess {
  return new ManagedProcess(
    `redis:${port}`,
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...args],
    process.env,
    null,
    redisAnswers(port),
  );
}

/**
 * Node flags the service runs with wherever it is started (`npm start`, `npm run dev`, `npm run demo`,
 * the Dockerfile's CMD: test/unit/service-node-flags.test.ts keeps them in step), so the bench and
 * chaos runs measure the service as deployed. A 64 MB semi-space (Node 20's default: 16 MB) makes
 * young-generation collections rarer: the broker and the workers allocate ~150 MB/s at fleet scale,
 * and most of it dies young. 10,000-device bench: service CPU per execution -8 % (divided by the
 * simulator's, which takes out the box's drift), status p99 at 1,000 in flight halved;
 * the price is up to ~100 MB more resident memory per process before a collection.
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/** A fleetflash process (`src/main.ts` through tsx) with the given roles and environment. */
export function fleetflashProcess(name: string, env: Record<string, string>, logFile: string | null): ManagedProcess {
  const roles = (env.ROLE ?? '').split(',');
  const ready = roles.includes('api')
    ? healthzAnswers(env.PORT)
    : roles.includes('broker')
      ? () => portOpen(Number(env.MQTT_PORT))
      : async () => true;
  return new ManagedProcess(name, process.execPath, [...SERVICE_NODE_FLAGS, '--import', 'tsx', path.join(ROOT, 'src/main.ts')], { ...process.env, ...env }, logFile, ready);
}
