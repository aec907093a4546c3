/**
 * Resolves a launch request's devices against the inventory in Redis, once, at launch: an explicit
 * list (unknown ids → 404), or a filter over product, installed version and site. A site filter
 * reads only those sites' records; otherwise the inventory is scanned in batches, so a fleet of
 * tens of thousands resolves in well under a second without one huge reply.
 */
import { NotFoundError, UnprocessableError } from '../errors.js';
import type { DeviceRecord, FirmwareRecord, TargetFilter } from '../protocol/index.js';
import type { DeviceStore } from '../store/device-store.js';

/** Ids listed in an error's details at most; the rest are counted. */
const MAX_LISTED = 100;

/** The explicit list, in the order given (that order is the release order); 404 for unknown ids. */
export async function resolveDeviceList(
  devices: DeviceStore,
  ids: readonly string[],
): Promise<DeviceRecord[]> {
  const records = await devices.getMany([...ids]);
  const unknown = ids.filter((_, i) => !records[i]);
  if (unknown.length) {
    throw new NotFoundError('device', unknown.slice(0, 5).join(', ') + (unknown.length > 5 ? '…' : ''), {
      unknown: unknown.slice(0, MAX_LISTED),
      ...(unknown.length > MAX_LISTED ? { more: unknown.length - MAX_LISTED } : {}),
    });
  }
  return records as DeviceRecord[];
}

/** True when the device matches every criterion of the filter (products default to the image's). */
export function matchesFilter(
  d: DeviceRecord,
  filter: TargetFilter,
  image: Pick<FirmwareRecord, 'productIds'>,
): boolean {
  const products = filter.products ?? image.productIds;
  return (
    d.productId !== null &&
    products.includes(d.productId) &&
    (filter.versions === undefined || (d.version !== null && filter.versions.includes(d.version))) &&
    (filter.sites === undefined || filter.sites.includes(d.portalId))
  );
}

/**
 * The devices a filter selects, ordered by device id (so a canary is a reproducible set); 422
 * `no_matching_devices` when none, `too_many_devices` above `maxDevices`.
 */
export async function resolveFilter(
  devices: DeviceStore,
  filter: TargetFilter,
  image: Pick<FirmwareRecord, 'productIds'>,
  maxDevices: number,
): Promise<DeviceRecord[]> {
  const found = new Map<string, DeviceRecord>();
  const take = (d: DeviceRecord | null) => {
    if (d && matchesFilter(d, filter, image)) found.set(d.deviceId, d);
  };
  if (filter.sites) {
    // Concurrent commands on one connection share round trips: 200 sites per batch.
    for (let i = 0; i < filter.sites.length; i += 200) {
      const ids = await Promise.all(
        filter.sites.slice(i, i + 200).map((site) => devices.siteDeviceIds(site)),
      );
      (await devices.getMany(ids.flat())).forEach(take);
    }
  } else {
    for await (const batch of devices.scan()) batch.forEach(take);
  }
  if (found.size === 0) {
    throw new UnprocessableError('no_matching_devices', 'no device in the inventory matches the filter', {
      filter,
    });
  }
  if (found.size > maxDevices) {
    throw new UnprocessableError(
      'too_many_devices',
      `the filter matches ${found.size} devices; one job takes at most ${maxDevices}`,
      { matched: found.size, max: maxDevices },
    );
  }
  return [...found.values()].sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
}
