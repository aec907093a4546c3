/**
 * Fault injection, decided per (seed, deviceId, executionId) so a test can predict which install
 * fails and how, whatever the timing. At most one fault per install: one uniform draw is compared
 * with the cumulative rates of the faults that apply to the device, in `FAULT_KINDS` order.
 * The install's pace (how long its work takes against nominal) is planned here too, from its own draw.
 */
import { parseDeviceId, type ServiceType } from '../src/protocol/index.js';
import { rngFor } from './prng.js';
import { NOT_UPDATABLE_CODES, type NotUpdatableCode } from './sim-errors.js';

export const FAULT_KINDS = [
  'notUpdatable',
  'wrongModel',
  'noResponse',
  'restoreFailed',
  'checksumMismatch',
  'downloadStall',
  'dropMidDownload',
  'slowLink',
  'neverReturns',
  'returnsOldVersion',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Probability 0..1 per install of each fault. */
export type FaultRates = Partial<Record<FaultKind, number>>;

/** Faults that only make sense for some products: the VE.Bus update tool's backup/restore steps. */
const ONLY_FOR: Partial<Record<FaultKind, readonly ServiceType[]>> = {
  noResponse: ['vebus'],
  restoreFailed: ['vebus'],
};

/** True when `kind` can happen to a device of this service type. */
export function faultApplies(kind: FaultKind, service: ServiceType): boolean {
  const only = ONLY_FOR[kind];
  return !only || only.includes(service);
}

export function isFaultKind(value: unknown): value is FaultKind {
  return typeof value === 'string' && (FAULT_KINDS as readonly string[]).includes(value);
}

/** Checks rates at once; throws with a message naming the bad entry. Returns a frozen copy. */
export function validateFaultRates(rates: FaultRates = {}): Readonly<FaultRates> {
  let sum = 0;
  for (const [kind, rate] of Object.entries(rates)) {
    if (!isFaultKind(kind))
      throw new RangeError(`unknown fault kind '${kind}' (known: ${FAULT_KINDS.join(', ')})`);
    if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) {
      throw new RangeError(`fault rate ${kind}=${String(rate)} must be a number in 0..1`);
    }
    sum += rate;
  }
  if (sum > 1 + 1e-9)
    throw new RangeError(`fault rates add up to ${sum}; at most one fault per install, so at most 1`);
  return Object.freeze({ ...rates });
}

/** What the simulator will do to one install. */
export interface InstallPlan {
  fault: FaultKind | null;
  /** For `notUpdatable`: which of VRM's codes the device answers. */
  notUpdatableCode: NotUpdatableCode | null;
  /**
   * This install's own pace: every duration of its work (download, verify, install, reboot) is
   * multiplied by it. 1 without a timing spread (see {@link installPace}).
   */
  pace: number;
}

/**
 * The fault (if any) and its details for one install of `executionId` on `deviceId`, and its pace
 * under `timingSpread`. The fault does not depend on the spread.
 */
export function planInstall(
  seed: number,
  deviceId: string,
  executionId: string,
  rates: FaultRates,
  timingSpread = 0,
): InstallPlan {
  const address = parseDeviceId(deviceId);
  if (!address) throw new RangeError(`not a device id: ${deviceId}`);
  const pace = installPace(seed, deviceId, executionId, timingSpread);
  const rng = rngFor('fault', seed, deviceId, executionId);
  const u = rng.next();
  let cumulative = 0;
  for (const kind of FAULT_KINDS) {
    const rate = rates[kind] ?? 0;
    if (rate <= 0 || !faultApplies(kind, address.service)) continue;
    cumulative += rate;
    if (u < cumulative) {
      return {
        fault: kind,
        notUpdatableCode: kind === 'notUpdatable' ? rng.pick(NOT_UPDATABLE_CODES) : null,
        pace,
      };
    }
  }
  return { fault: null, notUpdatableCode: null, pace };
}

/**
 * How much slower (> 1) or faster (< 1) than nominal one install runs: uniform in
 * [1 − spread, 1 + spread], seeded by install like the fault. Real devices of one kind do not take the
 * same milliseconds (links, flash, boot differ): without a spread, devices told to install in the same
 * moment report every step in the same moment too, for the whole update.
 */
export function installPace(seed: number, deviceId: string, executionId: string, spread: number): number {
  if (spread === 0) return 1;
  return 1 + spread * (2 * rngFor('pace', seed, deviceId, executionId).next() - 1);
}

/** The spread the CLI, the demo and the benchmark use unless told otherwise (the library's default is 0). */
export const TYPICAL_TIMING_SPREAD = 0.2;

/** A timing spread must leave every install some positive duration: 0 ≤ spread < 1 (NaN is not one). */
export function isTimingSpread(spread: number): boolean {
  return spread >= 0 && spread < 1;
}

/** `spread` if {@link isTimingSpread}, else a RangeError naming the option. */
export function validateTimingSpread(spread: number): number {
  if (!isTimingSpread(spread)) throw new RangeError(`timingSpread must be >= 0 and < 1, got ${spread}`);
  return spread;
}

/** Shorthand for `planInstall(...).fault`. */
export function plannedFault(
  seed: number,
  deviceId: string,
  executionId: string,
  rates: FaultRates,
): FaultKind | null {
  return planInstall(seed, deviceId, executionId, rates).fault;
}
