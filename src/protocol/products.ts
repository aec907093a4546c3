/**
 * The Victron products fleetflash knows, with their real product ids (see shared/reference).
 */
import type { ServiceType } from './ids.js';

/** How a product family encodes `/FirmwareVersion`. */
export type VersionFamily = 'gx' | 'vedirect' | 'vebus';

export interface ProductInfo {
  productId: number;
  name: string;
  service: ServiceType;
  connection: 'internal' | 'VE.Bus' | 'VE.Direct' | 'VE.Can';
  family: VersionFamily;
}

export const PRODUCTS: readonly ProductInfo[] = [
  { productId: 0xc00a, name: 'Cerbo GX', service: 'platform', connection: 'internal', family: 'gx' },
  { productId: 0xc002, name: 'Venus GX', service: 'platform', connection: 'internal', family: 'gx' },
  { productId: 0xc001, name: 'Color Control GX', service: 'platform', connection: 'internal', family: 'gx' },
  { productId: 0x2780, name: 'MultiPlus-II 12/3000/120-50', service: 'vebus', connection: 'VE.Bus', family: 'vebus' },
  { productId: 0xa058, name: 'SmartSolar MPPT 150/35', service: 'solarcharger', connection: 'VE.Direct', family: 'vedirect' },
  { productId: 0xa389, name: 'SmartShunt 500A/50mV', service: 'battery', connection: 'VE.Direct', family: 'vedirect' },
  { productId: 0xa38a, name: 'SmartShunt 1000A/50mV', service: 'battery', connection: 'VE.Direct', family: 'vedirect' },
  { productId: 0xa38b, name: 'SmartShunt 2000A/50mV', service: 'battery', connection: 'VE.Direct', family: 'vedirect' },
  { productId: 0xa381, name: 'BMV-712 Smart', service: 'battery', connection: 'VE.Direct', family: 'vedirect' },
];

const BY_ID = new Map(PRODUCTS.map((p) => [p.productId, p]));

export function productById(productId: number): ProductInfo | undefined {
  return BY_ID.get(productId);
}

/** Product ids as Victron writes them: `0xA058`. */
export function formatProductId(productId: number): string {
  return `0x${productId.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Accepts a number or a `0x…`/hex string; null when it is neither. */
export function parseProductId(value: unknown): number | null {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff) return value;
  if (typeof value === 'string' && /^(0x)?[0-9a-fA-F]{1,4}$/.test(value)) return parseInt(value.replace(/^0x/, ''), 16);
  return null;
}
