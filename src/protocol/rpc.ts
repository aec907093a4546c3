/**
 * The firmware RPC carried on `P/<portalId>/in|out/<rpcId>`: requests, answers, progress events,
 * and a validator for each. Everything from the network is `unknown` until one of these accepts it.
 */
import { parseLocalDevice, RPC_ID_RE } from './ids.js';
import { isPhase, type ErrorInfo, type Phase } from './states.js';
import { isVersion } from './versions.js';

/** Largest RPC or notification payload anyone should send; larger ones are dropped unread. */
export const MAX_PAYLOAD_BYTES = 16 * 1024;

export interface InstallParams {
  /** `<service>/<instance>` within the site. */
  device: string;
  url: string;
  sha256: string;
  size: number;
  version: string;
  productIds: number[];
  jobId: string;
  executionId: string;
}

export interface StatusParams {
  device: string;
}

export type RpcRequest =
  | { method: 'firmware.install'; params: InstallParams }
  | { method: 'firmware.status'; params: StatusParams };

/** What a device remembers of one execution. */
export interface DeviceExecutionStatus {
  executionId: string;
  jobId: string;
  state: 'running' | 'succeeded' | 'failed';
  phase: Phase;
  progress: number;
  error: ErrorInfo | null;
  targetVersion: string;
}

/** Answer to `firmware.status`. */
export interface DeviceStatus {
  device: string;
  productId: number;
  version: string | null;
  busy: boolean;
  /** Changes at every boot: tells a re-attaching worker that a reboot happened. */
  bootId: string;
  /** The execution running now, or the last one, if any. */
  execution: DeviceExecutionStatus | null;
}

/** Answer to an accepted `firmware.install`. `duplicate` is true when the execution was already known. */
export interface InstallAccepted {
  accepted: true;
  executionId: string;
  duplicate: boolean;
}

export type RpcOutMessage =
  | { kind: 'result'; result: unknown }
  | { kind: 'error'; error: ErrorInfo }
  | { kind: 'progress'; executionId: string; phase: Phase; progress: number }
  | { kind: 'failed'; executionId: string; error: ErrorInfo };

const SHA256_RE = /^[0-9a-f]{64}$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isErrorInfo(value: unknown): value is ErrorInfo {
  return isObject(value) && typeof value.code === 'string' && typeof value.message === 'string';
}

function isProgress(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 100;
}

function isExecutionId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 200 && !/[+#/\s]/.test(value);
}

/** Parses a JSON payload; null for invalid JSON or oversize input. */
export function parseJsonPayload(payload: Uint8Array | string): unknown {
  const length = typeof payload === 'string' ? payload.length : payload.byteLength;
  if (length === 0 || length > MAX_PAYLOAD_BYTES) return null;
  const text = typeof payload === 'string' ? payload : new TextDecoder().decode(payload);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** Validates a request on `P/<id>/in/<rpcId>`; returns the request or an error message. */
export function parseRpcRequest(value: unknown): RpcRequest | { invalid: string } {
  if (!isObject(value) || typeof value.method !== 'string') return { invalid: 'request needs a method' };
  const params = value.params;
  if (!isObject(params)) return { invalid: 'request needs params' };
  if (!parseLocalDevice(params.device)) return { invalid: 'params.device must be <service>/<instance>' };
  if (value.method === 'firmware.status') return { method: 'firmware.status', params: { device: params.device as string } };
  if (value.method !== 'firmware.install') return { invalid: `unknown method ${value.method}` };
  const p = params;
  if (typeof p.url !== 'string' || !/^https?:\/\//.test(p.url)) return { invalid: 'params.url must be http(s)' };
  if (typeof p.sha256 !== 'string' || !SHA256_RE.test(p.sha256)) return { invalid: 'params.sha256 must be 64 hex' };
  if (typeof p.size !== 'number' || !Number.isInteger(p.size) || p.size <= 0) return { invalid: 'params.size' };
  if (!isVersion(p.version)) return { invalid: 'params.version' };
  if (!Array.isArray(p.productIds) || !p.productIds.every((n) => Number.isInteger(n))) {
    return { invalid: 'params.productIds' };
  }
  if (typeof p.jobId !== 'string' || !isExecutionId(p.executionId)) return { invalid: 'params.jobId/executionId' };
  return {
    method: 'firmware.install',
    params: {
      device: p.device as string,
      url: p.url,
      sha256: p.sha256,
      size: p.size,
      version: p.version,
      productIds: p.productIds as number[],
      jobId: p.jobId,
      executionId: p.executionId,
    },
  };
}

/** Validates a message on `P/<id>/out/<rpcId>`; null when it is none of the known shapes. */
export function parseRpcOut(value: unknown): RpcOutMessage | null {
  if (!isObject(value)) return null;
  if ('result' in value) return { kind: 'result', result: value.result };
  if ('error' in value && !('event' in value)) return isErrorInfo(value.error) ? { kind: 'error', error: value.error } : null;
  if (value.event === 'progress' && isExecutionId(value.executionId) && isPhase(value.phase) && isProgress(value.progress)) {
    return { kind: 'progress', executionId: value.executionId, phase: value.phase, progress: value.progress };
  }
  if (value.event === 'failed' && isExecutionId(value.executionId) && isErrorInfo(value.error)) {
    return { kind: 'failed', executionId: value.executionId, error: value.error };
  }
  return null;
}

export function isInstallAccepted(value: unknown): value is InstallAccepted {
  return isObject(value) && value.accepted === true && isExecutionId(value.executionId);
}

export function isDeviceStatus(value: unknown): value is DeviceStatus {
  if (!isObject(value)) return false;
  if (typeof value.device !== 'string' || typeof value.productId !== 'number' || typeof value.busy !== 'boolean') {
    return false;
  }
  if (value.version !== null && !isVersion(value.version)) return false;
  if (typeof value.bootId !== 'string') return false;
  const e = value.execution;
  if (e === null) return true;
  return (
    isObject(e) &&
    isExecutionId(e.executionId) &&
    (e.state === 'running' || e.state === 'succeeded' || e.state === 'failed') &&
    isPhase(e.phase) &&
    isProgress(e.progress) &&
    (e.error === null || isErrorInfo(e.error))
  );
}

export function isRpcId(value: string): boolean {
  return RPC_ID_RE.test(value);
}

/** Notification payload `{"value": v}`; an empty payload means the value is gone. */
export function parseNotification(payload: Uint8Array | string): { value: unknown } | null {
  const parsed = parseJsonPayload(payload);
  return isObject(parsed) && 'value' in parsed ? { value: parsed.value } : null;
}
