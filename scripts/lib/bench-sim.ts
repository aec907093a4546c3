/**
 * The benchmark's simulated fleet runs in its own process (`bench-sim-child.ts`), so the simulator's
 * CPU is neither counted as the service's nor steals the bench process's event loop while it
 * timestamps status messages. This module is the parent's side: the IPC protocol and a typed client.
 *
 * Timestamps are `process.hrtime.bigint()` in microseconds: CLOCK_MONOTONIC, shared by every process
 * on the machine, so a device's send time and the subscriber's receive time compare directly.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './processes.js';

export interface SimStartOptions {
  url: string;
  sites: number;
  salt: string;
  timeScale: number;
  timingSpread: number;
  connectRatePerSec: number;
  /** portal id → MQTT secret. */
  secrets: Record<string, string>;
}

/** One progress event as a device sent it: execution id, phase, overall percent, send time (µs, monotonic). */
export type ProgressSample = [executionId: string, phase: string, progress: number, sentUs: number];

export interface SimStats {
  /** CPU time of the simulator process so far, µs (user + system). */
  cpuUs: number;
  rss: number;
  connected: number;
  /** Devices between accepting an install and finishing it, now. */
  updating: number;
  succeeded: number;
  failed: number;
  /** MQTT messages the sites published / received so far. */
  published: number;
  received: number;
}

export type ToChild =
  | { type: 'start'; options: SimStartOptions }
  | { type: 'record'; on: boolean }
  | { type: 'samples' }
  | { type: 'stats' }
  | { type: 'stop' };

export type FromChild =
  | { type: 'started'; connectMs: number; devices: { deviceId: string; service: string; version: string }[] }
  | { type: 'samples'; samples: ProgressSample[] }
  | { type: 'stats'; stats: SimStats }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

/** Monotonic clock in microseconds, comparable across processes of one machine. */
export function monoUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** The simulator process, driven over IPC one request at a time. */
export class SimProcess {
  private constructor(private readonly child: ChildProcess) {}
  private stopping: Promise<void> | null = null;

  /**
   * `profileDir`: write V8 CPU profiles of the simulator into its `simulator/` subdirectory (node
   * --cpu-prof), at its exit. Default names: tsx's loader thread writes one of its own (idle).
   */
  static spawn(profileDir: string | null = null): SimProcess {
    const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profileDir, 'simulator')}`] : [];
    const child = fork(path.join(ROOT, 'scripts/lib/bench-sim-child.ts'), [], {
      execArgv: ['--import', 'tsx', ...profile],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new SimProcess(child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  start(options: SimStartOptions, timeoutMs: number): Promise<Extract<FromChild, { type: 'started' }>> {
    return this.ask({ type: 'start', options }, 'started', timeoutMs);
  }

  async record(on: boolean): Promise<void> {
    this.child.send({ type: 'record', on } satisfies ToChild);
    // Ordered with every later request on the same channel: the next answer proves it arrived.
    await this.stats();
  }

  async samples(): Promise<ProgressSample[]> {
    return (await this.ask({ type: 'samples' }, 'samples', 60_000)).samples;
  }

  async stats(): Promise<SimStats> {
    return (await this.ask({ type: 'stats' }, 'stats', 30_000)).stats;
  }

  /**
   * Stops the fleet (each site goes offline cleanly) and waits for the process to exit; once, however
   * often it is asked (a run's end and a signal stopping the bench can both ask).
   */
  stop(): Promise<void> {
    return (this.stopping ??= this.stopOnce());
  }

  private async stopOnce(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    // A child dying of the same Ctrl-C has closed the channel: the wait for its exit covers that.
    this.child.send({ type: 'stop' } satisfies ToChild, () => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(timer);
  }

  private ask<T extends FromChild['type']>(
    message: ToChild,
    answer: T,
    timeoutMs: number,
  ): Promise<Extract<FromChild, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`simulator did not answer '${message.type}' within ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (m: FromChild) => {
        if (m.type === 'error') done(new Error(`simulator: ${m.message}`));
        else if (m.type === answer) done(null, m as Extract<FromChild, { type: T }>);
      };
      const onExit = (code: number | null) => done(new Error(`simulator exited (${code ?? 'signal'})`));
      const done = (err: Error | null, value?: Extract<FromChild, { type: T }>) => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        if (err) reject(err);
        else resolve(value!);
      };
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(message);
    });
  }
}
