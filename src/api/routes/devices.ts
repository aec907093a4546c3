/** `/api/devices`: the fleet inventory with filters, and one device with its update history. */
import { Router } from 'express';
import { NotFoundError } from '../../errors.js';
import type { DeviceRecord } from '../../protocol/index.js';
import type { ApiDeps } from '../deps.js';
import { deviceIdParam, deviceListQuery } from '../schemas.js';
import { parseInput, parseParams } from '../validate.js';

/** The parsed filters of `GET /api/devices`. */
export interface DeviceFilter {
  product?: number;
  online?: boolean;
  site?: string;
  version?: string;
  q?: string;
}

/** Pure: keeps the records matching every given filter. */
export function filterDevices(records: readonly DeviceRecord[], f: DeviceFilter): DeviceRecord[] {
  const q = f.q?.toLowerCase();
  return records.filter(
    (d) =>
      (f.product === undefined || d.productId === f.product) &&
      (f.online === undefined || d.online === f.online) &&
      (f.site === undefined || d.portalId === f.site) &&
      (f.version === undefined || d.version === f.version) &&
      (q === undefined ||
        d.deviceId.includes(q) ||
        (d.productName?.toLowerCase().includes(q) ?? false) ||
        (d.customName?.toLowerCase().includes(q) ?? false)),
  );
}

/** Router for `/api/devices` (mount behind authenticate). */
export function devicesRouter(deps: ApiDeps): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const q = parseInput(deviceListQuery, req.query, 'query');
    // A site filter reads only that site's records instead of the whole fleet (same order as list()).
    const source = q.site
      ? (await deps.devices.getMany(await deps.devices.siteDeviceIds(q.site)))
          .filter((d): d is DeviceRecord => d !== null)
          .sort((a, b) => a.deviceId.localeCompare(b.deviceId))
      : await deps.devices.list();
    const matched = filterDevices(source, q);
    const offset = q.offset ?? 0;
    res.json({ devices: matched.slice(offset, q.limit === undefined ? undefined : offset + q.limit) });
  });

  router.get('/:id', async (req, res) => {
    const { id } = parseParams(
      deviceIdParam,
      req.params,
      () => new NotFoundError('device', String(req.params.id).slice(0, 64)),
    );
    const [device, history] = await Promise.all([deps.devices.get(id), deps.devices.history(id)]);
    if (!device) throw new NotFoundError('device', id);
    res.json({ device, history });
  });

  return router;
}
