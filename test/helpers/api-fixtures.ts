/** Inventory and firmware fixtures for the API tests. */
import { createHash, randomBytes } from 'node:crypto';
import { productById, type DeviceRecord, type ServiceType } from '../../src/protocol/index.js';
import { call, OPERATOR_TOKEN } from './api-harness.js';

export const SMARTSOLAR = 0xa058;
export const SMARTSHUNT = 0xa389;
export const CERBO = 0xc00a;

/** A device record as the fleet tracker would store it. */
export function device(
  portalId: string,
  service: ServiceType,
  instance: number,
  productId: number,
  version: string | null,
  extra: Partial<DeviceRecord> = {},
): DeviceRecord {
  return {
    deviceId: `${portalId}.${service}.${instance}`,
    portalId,
    service,
    instance,
    productId,
    productName: productById(productId)?.name ?? null,
    customName: null,
    version,
    online: true,
    lastSeenAt: new Date().toISOString(),
    lastUpdate: null,
    ...extra,
  };
}

/** Random image bytes and their SHA-256. */
export function image(size: number): { bytes: Buffer; sha256: string } {
  const bytes = randomBytes(size);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Uploads through the API (`POST /api/firmware`) with metadata in the query. */
export async function upload(
  baseUrl: string,
  bytes: Uint8Array,
  meta: Record<string, string>,
  opts: { token?: string; headers?: Record<string, string> } = {},
) {
  return call(baseUrl, 'POST', `/api/firmware?${new URLSearchParams(meta).toString()}`, {
    token: opts.token ?? OPERATOR_TOKEN,
    body: bytes,
    headers: { 'content-type': 'application/octet-stream', ...opts.headers },
  });
}
