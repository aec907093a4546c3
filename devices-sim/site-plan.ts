/**
 * What each simulated site consists of: the GX platform plus a seeded mix of VE.Bus inverter/chargers,
 * solar chargers and battery monitors, each with a realistic product id, instance and firmware.
 * Pure and deterministic: the same seed and site index always give the same site.
 */
import {
  encodeFirmwareVersion,
  productById,
  type ProductInfo,
  type ServiceType,
} from '../src/protocol/index.js';
import { rngFor, type Rng } from './prng.js';

/** Product kinds a site has besides its GX platform. */
export type ProductKind = 'vebus' | 'solarcharger' | 'battery';
export const PRODUCT_KINDS: readonly ProductKind[] = ['vebus', 'solarcharger', 'battery'];

/** Per-site counts of each product kind; unset kinds use the seeded default. */
export type ProductMix = Partial<Record<ProductKind, number>>;

/** First D-Bus device instance per service, as Venus OS assigns them. */
export const FIRST_INSTANCE: Readonly<Record<ServiceType, number>> = {
  platform: 0,
  vebus: 276,
  solarcharger: 256,
  battery: 512,
};

/** One product of a planned site, before it is brought to life. */
export interface PlannedDevice {
  portalId: string;
  service: ServiceType;
  instance: number;
  productId: number;
  /** Display version, e.g. `v3.70~33`, `v1.61`, `v502`. */
  version: string;
}

/** Chooses the version a device starts with; return undefined to keep the seeded one. */
export type InitialVersionChooser = (device: Readonly<PlannedDevice>) => string | undefined;

/** Either one version per service type, or a function of the device. */
export type InitialVersions = Partial<Record<ServiceType, string>> | InitialVersionChooser;

const PLATFORM_PRODUCTS = [
  [0xc00a, 85],
  [0xc002, 15],
] as const;
const BATTERY_PRODUCTS = [
  [0xa389, 40],
  [0xa38a, 25],
  [0xa38b, 10],
  [0xa381, 25],
] as const;

/** Seeded starting versions, weighted the way a real fleet lags behind the newest release. */
const VERSIONS: Readonly<Record<ServiceType, readonly (readonly [string, number])[]>> = {
  platform: [
    ['v3.50', 15],
    ['v3.55', 20],
    ['v3.60', 40],
    ['v3.70~33', 25],
  ],
  vebus: [
    ['v502', 60],
    ['v504', 40],
  ],
  solarcharger: [
    ['v1.59', 25],
    ['v1.61', 50],
    ['v1.64', 25],
  ],
  battery: [
    ['v4.12', 30],
    ['v4.14', 40],
    ['v4.16', 30],
  ],
};

/** The seeded default count of each kind. */
function defaultCount(kind: ProductKind, rng: Rng): number {
  return kind === 'solarcharger' ? rng.int(1, 2) : 1;
}

/** Checks a mix at once, naming the bad entry. */
export function validateMix(mix: ProductMix = {}): Readonly<ProductMix> {
  for (const [kind, count] of Object.entries(mix)) {
    if (!(PRODUCT_KINDS as readonly string[]).includes(kind)) {
      throw new RangeError(`unknown product kind '${kind}' in mix (known: ${PRODUCT_KINDS.join(', ')})`);
    }
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > 32) {
      throw new RangeError(`mix ${kind}=${String(count)} must be an integer 0..32`);
    }
  }
  return Object.freeze({ ...mix });
}

/** The products of the site `portalId`: the GX platform first, then VE.Bus, solar chargers, battery monitors. */
export function planSite(
  seed: number,
  portalId: string,
  mix: ProductMix = {},
  initialVersions?: InitialVersions,
): PlannedDevice[] {
  const rng = rngFor('site', seed, portalId);
  const devices: PlannedDevice[] = [
    planned(portalId, 'platform', 0, rng.weighted(PLATFORM_PRODUCTS), rng.weighted(VERSIONS.platform)),
  ];
  for (const kind of PRODUCT_KINDS) {
    const count = mix[kind] ?? defaultCount(kind, rng);
    for (let i = 0; i < count; i++) {
      const productId =
        kind === 'vebus' ? 0x2780 : kind === 'solarcharger' ? 0xa058 : rng.weighted(BATTERY_PRODUCTS);
      devices.push(
        planned(portalId, kind, FIRST_INSTANCE[kind] + i, productId, rng.weighted(VERSIONS[kind])),
      );
    }
  }
  if (initialVersions) {
    for (const device of devices) {
      const chosen =
        typeof initialVersions === 'function' ? initialVersions(device) : initialVersions[device.service];
      if (chosen === undefined) continue;
      const family = productOf(device).family;
      if (encodeFirmwareVersion(family, chosen) === null) {
        throw new RangeError(
          `initial version '${chosen}' cannot be encoded for a ${family} product (${device.service})`,
        );
      }
      device.version = chosen;
    }
  }
  return devices;
}

function planned(
  portalId: string,
  service: ServiceType,
  instance: number,
  productId: number,
  version: string,
) {
  return { portalId, service, instance, productId, version };
}

/** The product of a planned device; throws if the simulator planned an unknown product id. */
export function productOf(device: Pick<PlannedDevice, 'productId'>): ProductInfo {
  const product = productById(device.productId);
  if (!product) throw new Error(`no product 0x${device.productId.toString(16)}`);
  return product;
}
