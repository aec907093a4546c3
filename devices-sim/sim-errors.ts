/**
 * The error codes a simulated device answers with. Victron's own codes where they exist
 * (see shared/reference/victron-mqtt.md), plain kebab-case names for the rest.
 */
import type { ErrorInfo } from '../src/protocol/index.js';

export const SIM_ERROR_CODES = {
  badRequest: 'bad-request',
  unknownDevice: 'unknown-device',
  /** The product left the bus (rebooting, or gone for good). */
  deviceOffline: 'device-offline',
  /** Another execution holds the device's update lock. */
  busy: 'busy',
  /** vbdup: the file does not match the model. */
  wrongModel: 'vbdup-123',
  /** vbdup: the interface did not respond. */
  noResponse: 'vbdup-122',
  /** mk2vsc: writing the configuration back failed. */
  restoreFailed: 'mk2vsc-61',
  checksumMismatch: 'checksum-mismatch',
  /** HTTP error status, or the connection kept failing after every retry. */
  downloadFailed: 'download-failed',
  /** The download made no progress for longer than the device waits. */
  downloadTimeout: 'download-timeout',
  /** The GX rebooted while it was updating this product (it runs the product's update itself). */
  interrupted: 'interrupted',
} as const;

/** Why a product cannot be updated at all: VRM's 1341–1344. */
export const NOT_UPDATABLE_REASONS = {
  '1341': 'not a Victron product',
  '1342': 'the device says it is not updatable',
  '1343': 'the device is in the wrong mode',
  '1344': 'the device is blacklisted for remote updates',
} as const;
export type NotUpdatableCode = keyof typeof NOT_UPDATABLE_REASONS;
export const NOT_UPDATABLE_CODES = Object.keys(NOT_UPDATABLE_REASONS) as NotUpdatableCode[];

export function simError(code: string, message: string): ErrorInfo {
  return { code, message };
}
