/**
 * Every MQTT topic fleetflash uses, built and parsed in one place.
 * Device side: the Venus OS dialect (`N/`, `R/`, `W/`, `P/`); browser side: `fleetflash/…`.
 */
import { isPortalId, RPC_ID_RE } from './ids.js';

export const FLEETFLASH_ROOT = 'fleetflash';

/** `N/<portalId>/<service>/<instance>/<path>`: a device notification. */
export function notificationTopic(portalId: string, service: string, instance: number, path: string): string {
  return `N/${portalId}/${service}/${instance}/${trimSlashes(path)}`;
}

/** The one retained notification: `N/<portalId>/system/0/Serial`; subscribe with `+` to discover sites. */
export function serialTopic(portalId: string): string {
  return `N/${portalId}/system/0/Serial`;
}
export const SERIAL_DISCOVERY_TOPIC = 'N/+/system/0/Serial';

/** Every product's `Connected` leaf on a site: 1 when it is (back) on the bus, 0 or empty when not. */
export function connectedFilter(portalId: string): string {
  return `N/${portalId}/+/+/Connected`;
}

export function keepaliveTopic(portalId: string): string {
  return `R/${portalId}/keepalive`;
}
export function readTopic(portalId: string, service: string, instance: number, path: string): string {
  return `R/${portalId}/${service}/${instance}/${trimSlashes(path)}`;
}
export function writeTopic(portalId: string, service: string, instance: number, path: string): string {
  return `W/${portalId}/${service}/${instance}/${trimSlashes(path)}`;
}
export function heartbeatTopic(portalId: string): string {
  return `N/${portalId}/heartbeat`;
}
export function fullPublishCompletedTopic(portalId: string): string {
  return `N/${portalId}/full_publish_completed`;
}

export function rpcInTopic(portalId: string, rpcId: string): string {
  return `P/${portalId}/in/${rpcId}`;
}
export function rpcOutTopic(portalId: string, rpcId: string): string {
  return `P/${portalId}/out/${rpcId}`;
}
/** Everything a site answers on its RPC channel. */
export function rpcOutFilter(portalId: string): string {
  return `P/${portalId}/out/+`;
}

export function jobTopicPrefix(jobId: string): string {
  return `${FLEETFLASH_ROOT}/jobs/${jobId}`;
}
export function jobStatusTopic(jobId: string): string {
  return `${jobTopicPrefix(jobId)}/status`;
}
export function jobDeviceTopic(jobId: string, deviceId: string): string {
  return `${jobTopicPrefix(jobId)}/devices/${deviceId}`;
}
export function jobEventsTopic(jobId: string): string {
  return `${jobTopicPrefix(jobId)}/events`;
}
export function fleetDeviceTopic(deviceId: string): string {
  return `${FLEETFLASH_ROOT}/devices/${deviceId}`;
}

/** A parsed device-side topic. */
export type DeviceTopic =
  | { kind: 'N'; portalId: string; path: string[] }
  | { kind: 'R'; portalId: string; path: string[] }
  | { kind: 'W'; portalId: string; path: string[] }
  | { kind: 'P'; portalId: string; direction: 'in' | 'out'; rpcId: string };

/** Parses `N/…`, `R/…`, `W/…` and `P/…` topics; null for anything else or malformed ones. */
export function parseDeviceTopic(topic: string): DeviceTopic | null {
  const parts = topic.split('/');
  const [kind, portalId, ...rest] = parts;
  if (!isPortalId(portalId)) return null;
  if (kind === 'N' || kind === 'R' || kind === 'W') {
    if (rest.length === 0 || rest.some((p) => p === '')) return null;
    return { kind, portalId, path: rest };
  }
  if (kind === 'P') {
    if (rest.length !== 2) return null;
    const [direction, rpcId] = rest;
    if ((direction !== 'in' && direction !== 'out') || !RPC_ID_RE.test(rpcId)) return null;
    return { kind, portalId, direction, rpcId };
  }
  return null;
}

/** A parsed browser-side topic. */
export type FleetflashTopic =
  | { kind: 'job-status'; jobId: string }
  | { kind: 'job-device'; jobId: string; deviceId: string }
  | { kind: 'job-events'; jobId: string }
  | { kind: 'fleet-device'; deviceId: string };

export function parseFleetflashTopic(topic: string): FleetflashTopic | null {
  const parts = topic.split('/');
  if (parts[0] !== FLEETFLASH_ROOT) return null;
  if (parts[1] === 'jobs' && parts.length >= 4 && parts[2]) {
    const jobId = parts[2];
    if (parts.length === 4 && parts[3] === 'status') return { kind: 'job-status', jobId };
    if (parts.length === 4 && parts[3] === 'events') return { kind: 'job-events', jobId };
    if (parts.length === 5 && parts[3] === 'devices' && parts[4]) return { kind: 'job-device', jobId, deviceId: parts[4] };
    return null;
  }
  if (parts[1] === 'devices' && parts.length === 3 && parts[2]) return { kind: 'fleet-device', deviceId: parts[2] };
  return null;
}

/**
 * MQTT topic-filter matching ([MQTT-4.7]): `+` matches one level, `#` the rest (including none).
 * Topics starting with `$` are not matched by filters starting with a wildcard ([MQTT-4.7.2-1]).
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  // Level by level in place, without splitting: the broker's ACL runs this on every PUBLISH.
  let f = 0; // start of the filter's current level
  let t = 0; // start of the topic's current level; -1 once the topic has no level left
  for (;;) {
    let fEnd = filter.indexOf('/', f);
    if (fEnd === -1) fEnd = filter.length;
    const fLen = fEnd - f;
    if (fLen === 1 && filter.charCodeAt(f) === HASH) return true;
    if (t === -1) return false;
    let tEnd = topic.indexOf('/', t);
    if (tEnd === -1) tEnd = topic.length;
    const plus = fLen === 1 && filter.charCodeAt(f) === PLUS;
    if (!plus && (fLen !== tEnd - t || !sameLevel(filter, f, topic, t, fLen))) return false;
    if (fEnd === filter.length) return tEnd === topic.length;
    f = fEnd + 1;
    t = tEnd === topic.length ? -1 : tEnd + 1;
  }
}

const HASH = 0x23;
const PLUS = 0x2b;

function sameLevel(a: string, aStart: number, b: string, bStart: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (a.charCodeAt(aStart + i) !== b.charCodeAt(bStart + i)) return false;
  return true;
}

/**
 * True when every topic that `filter` can match is also matched by `allowed`:
 * the rule for wildcard subscriptions under an ACL.
 */
export function filterWithin(filter: string, allowed: string): boolean {
  const f = filter.split('/');
  const a = allowed.split('/');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true;
    if (i >= f.length) return false;
    if (f[i] === '#') return false;
    if (a[i] === '+') continue;
    if (f[i] === '+' || f[i] !== a[i]) return false;
  }
  return f.length === a.length;
}

function trimSlashes(path: string): string {
  return path.replace(/^\/+|\/+$/g, '');
}
