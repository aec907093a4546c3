/**
 * Shape checks for what arrives over MQTT: a payload is `unknown` until one of these accepts it.
 * They check the fields the portal reads, not every field, so a newer service that adds fields
 * still works with an older page.
 */
import {
  EXECUTION_STATES,
  JOB_STATES,
  type DeviceRecord,
  type ExecutionRecord,
  type JobEvent,
  type JobRecord,
} from '../../src/protocol/index.js';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** A job summary from `fleetflash/jobs/<id>/status` or the API. */
export function isJobRecord(v: unknown): v is JobRecord {
  return (
    isObject(v) &&
    typeof v.id === 'string' &&
    (JOB_STATES as readonly unknown[]).includes(v.state) &&
    isSeq(v.seq) &&
    typeof v.total === 'number' &&
    isObject(v.counts)
  );
}

/** An execution record from `fleetflash/jobs/<id>/devices/<deviceId>` or the API. */
export function isExecutionRecord(v: unknown): v is ExecutionRecord {
  return (
    isObject(v) &&
    typeof v.deviceId === 'string' &&
    typeof v.jobId === 'string' &&
    (EXECUTION_STATES as readonly unknown[]).includes(v.state) &&
    isSeq(v.seq) &&
    typeof v.progress === 'number'
  );
}

/** A log line from `fleetflash/jobs/<id>/events` or the API. */
export function isJobEvent(v: unknown): v is JobEvent {
  return (
    isObject(v) &&
    isSeq(v.seq) &&
    typeof v.jobId === 'string' &&
    typeof v.message === 'string' &&
    typeof v.ts === 'string'
  );
}

/** A fleet inventory record from `fleetflash/devices/<deviceId>` or the API. */
export function isDeviceRecord(v: unknown): v is DeviceRecord {
  return (
    isObject(v) &&
    typeof v.deviceId === 'string' &&
    typeof v.portalId === 'string' &&
    typeof v.online === 'boolean'
  );
}

/**
 * Keeps the newer of two records by `seq`: the topics are retained and the API answers from Redis,
 * so the same record arrives from both in any order, and only a higher seq is news.
 */
export function newer<T extends { seq: number }>(current: T | undefined | null, candidate: T): boolean {
  return !current || candidate.seq > current.seq;
}
