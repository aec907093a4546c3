/**
 * Identifiers shared by every piece: portal ids, device ids, job and execution ids.
 * No Node APIs here: the browser imports this module too.
 */

/** D-Bus service types that fleetflash can update. */
export const SERVICE_TYPES = ['platform', 'vebus', 'solarcharger', 'battery'] as const;
export type ServiceType = (typeof SERVICE_TYPES)[number];

/** A GX portal id: 12 lowercase hex characters (from the unique id or eth0 MAC). */
export const PORTAL_ID_RE = /^[0-9a-f]{12}$/;
/** Job ids are short, sortable and safe in MQTT topic levels and Redis keys. */
export const JOB_ID_RE = /^j[0-9a-z]{8,24}$/;
/** RPC ids travel as one topic level: no wildcards, no separators. */
export const RPC_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

const DEVICE_ID_RE = /^([0-9a-f]{12})\.([a-z]+)\.(\d{1,5})$/;

/** One updatable product inside a site. */
export interface DeviceAddress {
  portalId: string;
  service: ServiceType;
  instance: number;
}

export function isPortalId(value: unknown): value is string {
  return typeof value === 'string' && PORTAL_ID_RE.test(value);
}

export function isServiceType(value: unknown): value is ServiceType {
  return typeof value === 'string' && (SERVICE_TYPES as readonly string[]).includes(value);
}

export function isJobId(value: unknown): value is string {
  return typeof value === 'string' && JOB_ID_RE.test(value);
}

/** `<portalId>.<service>.<instance>`, e.g. `c0619ab1d2e3.solarcharger.258`. */
export function formatDeviceId(address: DeviceAddress): string {
  return `${address.portalId}.${address.service}.${address.instance}`;
}

/** Parses a device id; returns null for anything that is not one. */
export function parseDeviceId(deviceId: unknown): DeviceAddress | null {
  if (typeof deviceId !== 'string') return null;
  const m = DEVICE_ID_RE.exec(deviceId);
  if (!m) return null;
  const [, portalId, service, inst] = m;
  if (!isServiceType(service)) return null;
  const instance = Number(inst);
  if (instance > 65535) return null;
  return { portalId, service, instance };
}

/** The device's address inside its site, as used in RPC params: `<service>/<instance>`. */
export function formatLocalDevice(address: Pick<DeviceAddress, 'service' | 'instance'>): string {
  return `${address.service}/${address.instance}`;
}

export function parseLocalDevice(value: unknown): Pick<DeviceAddress, 'service' | 'instance'> | null {
  if (typeof value !== 'string') return null;
  const m = /^([a-z]+)\/(\d{1,5})$/.exec(value);
  if (!m || !isServiceType(m[1])) return null;
  return { service: m[1], instance: Number(m[2]) };
}

/** Execution id: one device within one job; stable, so retries and re-attachment find it again. */
export function formatExecutionId(jobId: string, deviceId: string): string {
  return `${jobId}.${deviceId}`;
}

/** The job and device of an execution id (`<jobId>.<deviceId>`; job ids contain no dot). */
export function parseExecutionId(executionId: string): { jobId: string; deviceId: string } {
  const dot = executionId.indexOf('.');
  return { jobId: executionId.slice(0, dot), deviceId: executionId.slice(dot + 1) };
}

/** A new job id: time-ordered base36 plus randomness. */
export function newJobId(now: number = Date.now()): string {
  let rand = '';
  for (let i = 0; i < 6; i++) rand += Math.floor(Math.random() * 36).toString(36);
  return `j${now.toString(36)}${rand}`;
}
