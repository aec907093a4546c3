/**
 * The route table the OpenAPI document is generated from: method, path, access, and the very zod
 * schemas the routers validate with. A route added to a router must be added here too; the API test
 * checks the document lists every route.
 */
import type { z } from 'zod';
import {
  auditQuery,
  deviceIdParam,
  deviceListQuery,
  downloadQuery,
  firmwareIdParam,
  firmwareUploadMeta,
  jobEventsQuery,
  jobDeviceParams,
  jobIdParam,
  jobListQuery,
  launchJobSchema,
  mqttCredentialsBody,
  registerSiteSchema,
  registerSitesBulkSchema,
  sha256Param,
  type SchemaLimits,
} from './schemas.js';

/** A JSON Schema (or OpenAPI) object. */
export type JsonSchema = Record<string, unknown>;
/** Who may call a route: nobody special, a bearer token of at least that role, or a download token. */
export type Access = 'public' | 'viewer' | 'operator' | 'download-token';

/** One operation of the document. */
export interface RouteDoc {
  method: 'get' | 'post' | 'delete';
  /** OpenAPI path template (`/api/jobs/{id}`). */
  path: string;
  summary: string;
  access: Access;
  params?: z.ZodObject;
  query?: z.ZodObject;
  /**
   * Request body; several schemas mean "one of these"; a plain JSON Schema for non-JSON bodies.
   * `required: false` for an optional body (default true).
   */
  body?: { contentType: string; schema: z.ZodType | z.ZodType[] | JsonSchema; required?: boolean };
  /** Success status → description and (optional) a sketch of the JSON body. */
  ok: Record<number, { description: string; schema?: JsonSchema }>;
  /** Error statuses this route can answer besides the ones implied by `access`. */
  errors: number[];
}

/** A JSON object sketch: property name → type name (for response bodies whose types live in protocol/). */
function sketch(props: Record<string, string>): JsonSchema {
  return {
    type: 'object',
    properties: Object.fromEntries(Object.entries(props).map(([k, desc]) => [k, { description: desc }])),
  };
}

/** Every route of the API with its schemas; the document lists exactly these. */
export function apiRoutes(limits: SchemaLimits): RouteDoc[] {
  const json = (schema: z.ZodType | z.ZodType[]) => ({ contentType: 'application/json', schema });
  return [
    {
      method: 'get',
      path: '/api/me',
      summary: 'The caller: name and role',
      access: 'viewer',
      ok: {
        200: {
          description: 'The operator',
          schema: sketch({ name: 'string', role: '"viewer" | "operator"' }),
        },
      },
      errors: [],
    },
    {
      method: 'post',
      path: '/api/jobs',
      summary:
        'Launch a firmware job on a device list or a filter, with rollout limits, waves, abort rule, schedule and retries',
      access: 'operator',
      body: json(launchJobSchema(limits)),
      ok: {
        202: {
          description:
            'Job created; its executions are released by the rollout. Devices the image does not fit, or that already run it or a newer one, have `rejected` executions (`incompatible`, `not-newer`). `Location` names the job',
          schema: sketch({
            job: 'JobRecord, with topicPrefix fleetflash/jobs/<id>, errorCounts, target, rollout, abort, schedule, retry, release',
          }),
        },
      },
      errors: [400, 404, 413, 415, 422],
    },
    {
      method: 'get',
      path: '/api/jobs',
      summary: 'Jobs, newest first',
      access: 'viewer',
      query: jobListQuery,
      ok: { 200: { description: 'A page of jobs', schema: sketch({ jobs: 'JobRecord[]' }) } },
      errors: [400],
    },
    {
      method: 'get',
      path: '/api/jobs/{id}',
      summary: 'A job with its executions',
      access: 'viewer',
      params: jobIdParam,
      ok: {
        200: {
          description: 'The job',
          schema: sketch({ job: 'JobRecord', executions: 'ExecutionRecord[]' }),
        },
      },
      errors: [404, 409],
    },
    {
      method: 'post',
      path: '/api/jobs/{id}/devices/{deviceId}/cancel',
      summary: 'Cancel one execution; 409 once the install has been sent (the point of no return)',
      access: 'operator',
      params: jobDeviceParams,
      ok: { 200: { description: 'Canceled', schema: sketch({ execution: 'ExecutionRecord' }) } },
      errors: [404, 409],
    },
    {
      method: 'get',
      path: '/api/jobs/{id}/events',
      summary: 'The job log backlog (continue live on fleetflash/jobs/<id>/events)',
      access: 'viewer',
      params: jobIdParam,
      query: jobEventsQuery,
      ok: {
        200: {
          description: 'Log lines with seq > after',
          schema: sketch({ events: 'JobEvent[]', nextAfter: 'number: pass as `after` next time' }),
        },
      },
      errors: [400, 404],
    },
    {
      method: 'post',
      path: '/api/jobs/{id}/abort',
      summary: 'Abort: cancel executions not past the point of no return',
      access: 'operator',
      params: jobIdParam,
      ok: {
        200: {
          description: 'Aborted',
          schema: sketch({
            job: 'JobRecord',
            canceled: 'number',
            inFlight: 'number: executions that will finish',
          }),
        },
      },
      errors: [404],
    },
    {
      method: 'get',
      path: '/api/devices',
      summary: 'The fleet inventory',
      access: 'viewer',
      query: deviceListQuery,
      ok: { 200: { description: 'Matching devices', schema: sketch({ devices: 'DeviceRecord[]' }) } },
      errors: [400],
    },
    {
      method: 'get',
      path: '/api/devices/{id}',
      summary: 'A device with its update history',
      access: 'viewer',
      params: deviceIdParam,
      ok: {
        200: {
          description: 'The device',
          schema: sketch({ device: 'DeviceRecord', history: 'HistoryEntry[], newest first' }),
        },
      },
      errors: [404],
    },
    {
      method: 'get',
      path: '/api/sites',
      summary: 'Registered sites with device counts',
      access: 'viewer',
      ok: {
        200: {
          description: 'Sites',
          schema: sketch({ sites: '{portalId, name, registeredAt, online, devices}[]' }),
        },
      },
      errors: [],
    },
    {
      method: 'post',
      path: '/api/sites',
      summary: 'Register one site or many; secrets are shown only here',
      access: 'operator',
      body: json([registerSiteSchema, registerSitesBulkSchema]),
      ok: { 201: { description: '`{portalId, secret}` or `{sites: [{portalId, secret}]}`' } },
      errors: [400, 413, 415],
    },
    {
      method: 'post',
      path: '/api/firmware',
      summary: 'Upload an image (raw body); metadata in the query or X-Firmware-<Field> headers',
      access: 'operator',
      query: firmwareUploadMeta,
      body: {
        contentType: 'application/octet-stream',
        schema: { type: 'string', contentMediaType: 'application/octet-stream' },
      },
      ok: { 201: { description: 'Stored', schema: sketch({ firmware: 'FirmwareRecord' }) } },
      errors: [400, 409, 413, 415],
    },
    {
      method: 'get',
      path: '/api/firmware',
      summary: 'Uploaded images, newest first',
      access: 'viewer',
      ok: { 200: { description: 'Images', schema: sketch({ firmware: 'FirmwareRecord[]' }) } },
      errors: [],
    },
    {
      method: 'delete',
      path: '/api/firmware/{id}',
      summary: 'Delete an image (metadata and bytes); 409 while a job that has not finished uses it',
      access: 'operator',
      params: firmwareIdParam,
      ok: { 204: { description: 'Deleted' } },
      errors: [404, 409],
    },
    {
      method: 'get',
      path: '/api/firmware/{id}',
      summary: 'One image',
      access: 'viewer',
      params: firmwareIdParam,
      ok: { 200: { description: 'The image', schema: sketch({ firmware: 'FirmwareRecord' }) } },
      errors: [404],
    },
    {
      method: 'post',
      path: '/api/mqtt-credentials',
      summary:
        'Short-lived read-only MQTT-over-WebSocket credentials for a browser; the body is optional (no body: every job)',
      access: 'viewer',
      body: { ...json(mqttCredentialsBody), required: false },
      ok: {
        200: {
          description: 'Credentials',
          schema: sketch({
            url: 'ws(s) URL',
            username: 'string',
            password: 'token',
            expiresAt: 'ISO time',
            clientIdPrefix: '"web-<username>-": the client id must be this plus 1-64 of [0-9A-Za-z_]',
            jobs: '"*" or the job ids the token may watch',
          }),
        },
      },
      errors: [400, 413, 415, 503],
    },
    {
      method: 'get',
      path: '/api/audit',
      summary: 'The audit trail of mutating calls, newest first (operators only)',
      access: 'operator',
      query: auditQuery,
      ok: {
        200: {
          description: 'A page of entries',
          schema: sketch({
            entries:
              '{id, at, actor, role, action, method, path, target, status, outcome, requestId, remoteAddress}[]',
            nextBefore: 'number | null: pass as `before` for the next page',
          }),
        },
      },
      errors: [400],
    },
    {
      method: 'get',
      path: '/firmware/{sha256}',
      summary: 'Download an image (devices); HEAD and Range supported',
      access: 'download-token',
      params: sha256Param,
      query: downloadQuery,
      ok: { 200: { description: 'The image' }, 206: { description: 'The requested range (Content-Range)' } },
      errors: [404, 416],
    },
    {
      method: 'get',
      path: '/healthz',
      summary: 'Liveness',
      access: 'public',
      ok: { 200: { description: 'Always `{ok: true}`' } },
      errors: [],
    },
    {
      method: 'get',
      path: '/readyz',
      summary: 'Readiness of the dependencies',
      access: 'public',
      ok: { 200: { description: '`{ok: true, checks}`' } },
      errors: [503],
    },
    {
      method: 'get',
      path: '/api/openapi.json',
      summary: 'This document',
      access: 'public',
      ok: { 200: { description: 'OpenAPI 3.1' } },
      errors: [],
    },
  ];
}
