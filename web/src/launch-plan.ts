/**
 * Which of the selected devices an image fits, and what to tell the operator about each: pure, so the
 * launch view only renders it. The API refuses a launch with any misfit (422), so misfits are left out
 * of the request and listed with their reason instead.
 */
import {
  compareVersions,
  formatProductId,
  isVersion,
  type DeviceRecord,
  type FirmwareRecord,
} from '../../src/protocol/index.js';

/** A device the image fits, with remarks that do not stop the launch. */
export interface Fit {
  device: DeviceRecord;
  /** E.g. "offline now", "already runs v1.67", "downgrade from v1.70". */
  notes: string[];
}

/** A selected device that will not be updated, and why. */
export interface Misfit {
  deviceId: string;
  device: DeviceRecord | null;
  reason: string;
}

export interface LaunchPlan {
  fits: Fit[];
  misfits: Misfit[];
}

/** Splits the selection into devices the image fits and those it does not. */
export function planLaunch(
  selected: Iterable<string>,
  lookup: (id: string) => DeviceRecord | undefined,
  image: FirmwareRecord,
): LaunchPlan {
  const fits: Fit[] = [];
  const misfits: Misfit[] = [];
  const accepted = image.productIds.map(formatProductId).join(', ');
  for (const id of [...selected].sort()) {
    const device = lookup(id) ?? null;
    if (!device) {
      misfits.push({ deviceId: id, device, reason: 'no longer in the inventory' });
      continue;
    }
    if (device.productId === null) {
      misfits.push({ deviceId: id, device, reason: `product unknown; the image fits ${accepted}` });
      continue;
    }
    if (!image.productIds.includes(device.productId)) {
      const product = `${device.productName ?? 'product'} (${formatProductId(device.productId)})`;
      misfits.push({
        deviceId: id,
        device,
        reason: `${product}; ${image.name} ${image.version} fits only ${accepted}`,
      });
      continue;
    }
    fits.push({ device, notes: notesFor(device, image) });
  }
  return { fits, misfits };
}

function notesFor(device: DeviceRecord, image: FirmwareRecord): string[] {
  const notes: string[] = [];
  if (!device.online) notes.push('offline now: it will wait in preflight until its timeout');
  if (device.version && isVersion(device.version) && isVersion(image.version)) {
    const cmp = compareVersions(image.version, device.version);
    if (cmp === 0) notes.push(`already runs ${device.version}`);
    else if (cmp < 0) notes.push(`downgrade from ${device.version}`);
  }
  if (device.service === 'vebus') notes.push('VE.Bus: the AC output is interrupted while it flashes');
  return notes;
}

/** How many selected devices an image fits: to offer the best image first. */
export function fitCount(
  selected: Iterable<string>,
  lookup: (id: string) => DeviceRecord | undefined,
  image: FirmwareRecord,
): number {
  let n = 0;
  for (const id of selected) {
    const p = lookup(id)?.productId;
    if (p !== undefined && p !== null && image.productIds.includes(p)) n += 1;
  }
  return n;
}
