/**
 * Overall progress of an update, 0–100 across all phases, as the device reports it in progress
 * events. Each phase owns a band; events go out at phase changes and every 5 % step, never more.
 */
import type { Phase } from '../src/protocol/index.js';

/** The device-side phases and their band of the overall percentage. */
export type DevicePhase = Extract<Phase, 'downloading' | 'verifying' | 'installing' | 'rebooting'>;

export const PHASE_BANDS: Readonly<Record<DevicePhase, readonly [from: number, to: number]>> = {
  downloading: [0, 60],
  verifying: [60, 65],
  installing: [65, 95],
  rebooting: [95, 99],
};

/** Overall percentage for `fraction` (0..1) of `phase`, rounded down to an integer. */
export function overallProgress(phase: DevicePhase, fraction: number): number {
  const [from, to] = PHASE_BANDS[phase];
  const f = Math.min(1, Math.max(0, fraction));
  // The epsilon keeps 74.99999 (thirds and sixths in floating point) from reading as 74.
  return Math.floor(from + (to - from) * f + 1e-9);
}

export const PROGRESS_STEP = 5;

/** Decides which progress values are worth an event. */
export class ProgressThrottle {
  private lastPhase: DevicePhase | null = null;
  private lastStep = -1;

  /** True when `(phase, progress)` starts a phase or crosses into a new 5 % step. */
  shouldEmit(phase: DevicePhase, progress: number): boolean {
    const step = Math.floor(progress / PROGRESS_STEP);
    if (phase !== this.lastPhase || step > this.lastStep) {
      this.lastPhase = phase;
      this.lastStep = step;
      return true;
    }
    return false;
  }
}
