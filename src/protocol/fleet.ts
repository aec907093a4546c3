/** Fleet inventory records: served by the API and published retained on `fleetflash/devices/<deviceId>`. */
import type { ServiceType } from './ids.js';
import type { ExecutionState } from './states.js';

export interface LastUpdate {
  jobId: string;
  executionId: string;
  state: ExecutionState;
  fromVersion: string | null;
  toVersion: string;
  finishedAt: string | null;
  errorCode: string | null;
  /** Set when the device reported the target version after the execution ended without success. */
  lateVersionReportedAt?: string;
}

export interface DeviceRecord {
  deviceId: string;
  portalId: string;
  service: ServiceType;
  instance: number;
  productId: number | null;
  productName: string | null;
  customName: string | null;
  /** Display version (`v3.70~33`, `v1.57`, `v504`), null when unknown. */
  version: string | null;
  online: boolean;
  lastSeenAt: string;
  lastUpdate: LastUpdate | null;
}

/** One entry of a device's update history. */
export interface HistoryEntry extends LastUpdate {
  startedAt: string | null;
  durationMs: number | null;
  errorMessage: string | null;
}

/** A firmware image; its id is its SHA-256 (content-addressed). */
export interface FirmwareRecord {
  id: string;
  sha256: string;
  size: number;
  version: string;
  /** Product ids the image fits. */
  productIds: number[];
  name: string;
  notes: string;
  uploadedAt: string;
  uploadedBy: string;
}
