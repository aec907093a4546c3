/**
 * Whether a device takes a `firmware.install`: a pure decision over the device's state, the request
 * and the planned fault. The order matters and mirrors a real device: a known execution is answered
 * as a duplicate before anything else (idempotency), then presence, the update lock, the model check,
 * and finally the device's own refusal codes.
 */
import {
  encodeFirmwareVersion,
  type ErrorInfo,
  type InstallParams,
  type ProductInfo,
} from '../src/protocol/index.js';
import type { InstallPlan } from './fault-plan.js';
import { NOT_UPDATABLE_REASONS, SIM_ERROR_CODES, simError } from './sim-errors.js';

/** What admission needs to know about the device. */
export interface AdmissionDevice {
  readonly product: ProductInfo;
  readonly online: boolean;
  readonly current: { readonly executionId: string } | null;
  execution(executionId: string): unknown;
}

export type Admission = { kind: 'duplicate' } | { kind: 'refused'; error: ErrorInfo } | { kind: 'accepted' };

export function admitInstall(device: AdmissionDevice, params: InstallParams, plan: InstallPlan): Admission {
  if (device.execution(params.executionId)) return { kind: 'duplicate' };
  if (!device.online) {
    return refused(SIM_ERROR_CODES.deviceOffline, 'the device is not on the bus');
  }
  if (device.current) {
    return refused(
      SIM_ERROR_CODES.busy,
      `waiting for a task to finish (execution ${device.current.executionId})`,
    );
  }
  const productId = device.product.productId;
  if (!params.productIds.includes(productId) || plan.fault === 'wrongModel') {
    return refused(
      SIM_ERROR_CODES.wrongModel,
      `file does not match the model (device is 0x${productId.toString(16).toUpperCase()})`,
    );
  }
  if (encodeFirmwareVersion(device.product.family, params.version) === null) {
    return refused(
      SIM_ERROR_CODES.badRequest,
      `version ${params.version} is not a ${device.product.family} firmware version`,
    );
  }
  if (plan.fault === 'notUpdatable' && plan.notUpdatableCode) {
    return refused(plan.notUpdatableCode, NOT_UPDATABLE_REASONS[plan.notUpdatableCode]);
  }
  return { kind: 'accepted' };
}

function refused(code: string, message: string): Admission {
  return { kind: 'refused', error: simError(code, message) };
}
