/**
 * Launch checks, pure: does an image fit a device's product, and is it newer than what the device
 * runs? A device that fails either gets a `rejected` execution with the reason code at launch (and is
 * never released); the request fails as a whole (422) only when no device is left to update.
 */
import {
  compareVersions,
  formatProductId,
  isVersion,
  type DeviceRecord,
  type ErrorInfo,
  type FirmwareRecord,
  type LaunchRejectionCode,
} from '../protocol/index.js';

export interface VersionPolicy {
  allowDowngrade: boolean;
  allowSameVersion: boolean;
}

/** Why a device cannot take the image, or null when it can. */
export function launchRejection(
  device: Pick<DeviceRecord, 'productId' | 'version'>,
  image: Pick<FirmwareRecord, 'productIds' | 'version' | 'name'>,
  policy: VersionPolicy,
): (ErrorInfo & { code: LaunchRejectionCode }) | null {
  if (device.productId === null || !image.productIds.includes(device.productId)) {
    return {
      code: 'incompatible',
      message: `${image.name} ${image.version} fits ${image.productIds.map(formatProductId).join(', ')}; the device is ${
        device.productId === null ? 'an unknown product' : formatProductId(device.productId)
      }`,
    };
  }
  // An unknown or unparsable installed version cannot be proven newer or older: let preflight ask the device.
  if (device.version === null || !isVersion(device.version)) return null;
  const cmp = compareVersions(image.version, device.version);
  if (cmp < 0 && !policy.allowDowngrade) {
    return {
      code: 'not-newer',
      message: `the device runs ${device.version}, newer than ${image.version} (allowDowngrade to install it)`,
    };
  }
  if (cmp === 0 && !policy.allowSameVersion) {
    return {
      code: 'not-newer',
      message: `the device already runs ${image.version} (allowSameVersion to reinstall it)`,
    };
  }
  return null;
}
