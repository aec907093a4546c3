/**
 * Fault injection, decided per (seed, deviceId, executionId) so a test can predict which install
 * fails and how, whatever the timing. At most one fault per install: one uniform draw is compared
 * with the cumulative rates of the faults that apply to the device, in `FAULT_KINDS` order.
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
}

/** The fault (if any) and its details for one install of `executionId` on `deviceId`. */
export function planInstall(
  seed: number,
  deviceId: string,
  executionId: string,
  rates: FaultRates,
): InstallPlan {
  const address = parseDeviceId(deviceId);
  if (!address) throw new RangeError(`not a device id: ${deviceId}`);
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
      };
    }
  }
  return { fault: null, notUpdatableCode: null };
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
