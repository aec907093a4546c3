/**
 * The D-Bus paths a simulated product exposes, as `[path, value]` leaves. Values are computed from
 * the device's few state fields when asked (a full republish or a read), not stored per path:
 * that keeps 40,000 devices in a few megabytes.
 */
import { encodeFirmwareVersion, type ProductInfo, type ServiceType } from '../src/protocol/index.js';
import { hash32 } from './prng.js';

/** What the path table needs from a device. */
export interface DevicePathState {
  readonly portalId: string;
  readonly service: ServiceType;
  readonly instance: number;
  readonly product: ProductInfo;
  readonly version: string;
  readonly customName: string;
  readonly connected: boolean;
  readonly firmwareState: number;
  readonly firmwareProgress: number;
}

export type Leaf = readonly [path: string, value: unknown];

/** GX firmware states on `platform/0/Firmware/State`. */
export const FIRMWARE_STATE = {
  fileNotFound: 997,
  updateError: 998,
  checkError: 999,
  idle: 1000,
  checking: 1001,
  downloadingAndInstalling: 1002,
  rebooting: 1003,
} as const;

const PROCESS: Readonly<Record<ServiceType, readonly [name: string, version: string]>> = {
  platform: ['/opt/victronenergy/venus-platform/venus-platform', '1.40'],
  vebus: ['/opt/victronenergy/mk2-dbus/mk2-dbus', '3.58'],
  solarcharger: ['/opt/victronenergy/vedirect-interface/vedirect-dbus', '3.49'],
  battery: ['/opt/victronenergy/vedirect-interface/vedirect-dbus', '3.49'],
};

const HARDWARE_VERSION: Readonly<Record<ServiceType, number | string>> = {
  platform: 'rev 3',
  vebus: 0,
  solarcharger: 0,
  battery: 0,
};

/** Every leaf of the device, in a stable order. */
export function deviceLeaves(d: DevicePathState): Leaf[] {
  const [processName, processVersion] = PROCESS[d.service];
  const leaves: Leaf[] = [
    ['Mgmt/ProcessName', processName],
    ['Mgmt/ProcessVersion', processVersion],
    ['Mgmt/Connection', d.product.connection],
    ['DeviceInstance', d.instance],
    ['ProductId', d.product.productId],
    ['ProductName', d.product.name],
    ['FirmwareVersion', encodeFirmwareVersion(d.product.family, d.version)],
    ['HardwareVersion', HARDWARE_VERSION[d.service]],
    ['Connected', d.connected ? 1 : 0],
    ['Serial', serialNumber(d.portalId, d.service, d.instance)],
    ['CustomName', d.customName],
  ];
  if (d.service === 'platform') {
    leaves.push(
      ['Device/Model', d.product.name],
      ['Firmware/Installed/Version', d.version],
      ['Firmware/Installed/Build', buildStamp(d.version)],
      ['Firmware/State', d.firmwareState],
      ['Firmware/Progress', d.firmwareProgress],
    );
  }
  return leaves;
}

/** The value of one path, or undefined when the device has no such path. */
export function deviceLeaf(d: DevicePathState, path: string): unknown {
  for (const [p, v] of deviceLeaves(d)) if (p === path) return v;
  return undefined;
}

/** A Victron-style serial (`HQ2207ABCDE`), stable per device. */
export function serialNumber(portalId: string, service: string, instance: number): string {
  const h = hash32(`${portalId}/${service}/${instance}`);
  const year = 19 + (h % 7);
  const week = 1 + ((h >>> 3) % 52);
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  let tail = '';
  let x = hash32(`serial:${portalId}/${service}/${instance}`);
  for (let i = 0; i < 5; i++, x = Math.floor(x / alphabet.length)) tail += alphabet[x % alphabet.length];
  return `HQ${year}${String(week).padStart(2, '0')}${tail}`;
}

/** A Venus OS build stamp (`20250909064940`), stable per version string. */
export function buildStamp(version: string): string {
  const h = hash32(`build:${version}`);
  const day = Date.UTC(2024, 0, 1) + (h % 600) * 86_400_000 + ((h >>> 10) % 86_400) * 1000;
  return new Date(day).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}
