/** What the REST API needs from the rest of the service; main.ts builds it, tests build their own. */
import type { Express, Request, RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.js';
import type { OperatorAuth } from '../auth/operator-auth.js';
import type { TokenSigner } from '../auth/tokens.js';
import type { Config, OperatorRole } from '../config.js';
import type { JobLauncher } from '../jobs/launcher.js';
import type { ExecutionRecord, FirmwareRecord, JobRecord } from '../protocol/index.js';
import type { DeviceStore } from '../store/device-store.js';
import type { FirmwareStore } from '../store/firmware-store.js';
import type { JobStore } from '../store/job-store.js';
import type { SiteStore } from '../store/site-store.js';

/** The result of aborting a job: executions canceled now, and those past the point of no return. */
export interface AbortResult {
  job: JobRecord;
  canceled: number;
  inFlight: number;
}

/** Middleware an extension mounts behind to get the API's authentication and role checks. */
export interface ApiGuards {
  /** Bearer-token authentication with the API's failed-attempt limit (401/429). */
  authenticate: RequestHandler;
  /** Role check after `authenticate` (403). */
  requireRole: (role: OperatorRole) => RequestHandler;
}

export interface ApiDeps {
  config: Readonly<Config>;
  logger: Logger;
  operators: OperatorAuth;
  tokens: TokenSigner;
  jobs: JobStore;
  devices: DeviceStore;
  firmware: FirmwareStore;
  sites: SiteStore;
  /** The audit trail every mutating call of an authenticated operator is recorded in. */
  audit: AuditLog;
  launcher: JobLauncher;
  /** Aborts a job on behalf of `by`; throws NotFoundError for unknown jobs. */
  abort: (jobId: string, by: string) => Promise<AbortResult>;
  /** Cancels one execution; ConflictError (409) once it is past the point of no return. */
  cancelExecution: (jobId: string, deviceId: string, by: string) => Promise<ExecutionRecord>;
  /** Deletes an image (metadata and bytes); NotFoundError, or ConflictError (409) while a job that has not finished uses it. */
  deleteFirmware: (firmwareId: string, by: string) => Promise<FirmwareRecord>;
  readiness: () => Promise<{ ok: boolean; checks: Record<string, boolean> }>;
  /**
   * Absolute MQTT-over-WebSocket URL for browsers, or null when this instance has no broker
   * (`POST /api/mqtt-credentials` then answers 503). Gets the request to derive `ws://<Host>/mqtt`.
   */
  mqttWsUrl: (req: Request) => string | null;
  /** Static portal files served at `/`, or null for none. */
  webDir: string | null;
  /**
   * Mounts further routes (e.g. `/metrics`, the queue dashboard at `/admin/queues`) after the API
   * routes and before the JSON 404 and error handlers, which must stay last. Optional.
   */
  mount?: (app: Express, guards: ApiGuards) => void;
}
