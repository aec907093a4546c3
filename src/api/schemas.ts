/**
 * Every request body, query and path parameter the REST API accepts, as zod schemas.
 * The routes validate with these and the OpenAPI document is generated from the same objects,
 * so the contract and the checks cannot drift apart.
 */
import { z } from 'zod';
import { isJobId, isVersion, parseDeviceId, parseProductId, PORTAL_ID_RE } from '../protocol/index.js';
import {
  abortRuleSchema,
  retryPolicySchema,
  rolloutLimitsSchema,
  scheduleSchema,
  targetFilterSchema,
} from './rollout-schemas.js';

/** Largest JSON body of any route except bulk site registration (413 above it). */
export const JSON_BODY_LIMIT_BYTES = 1024 * 1024;
/**
 * Bulk site registration carries up to {@link MAX_SITES_PER_REQUEST} sites with names of up to
 * 120 characters: about 1.7 MB, so it gets a larger limit than the other routes.
 */
export const SITES_BODY_LIMIT_BYTES = 2 * 1024 * 1024;
export const MAX_SITES_PER_REQUEST = 10_000;
export const MAX_EVENTS_PER_PAGE = 1000;
export const MAX_JOBS_PER_PAGE = 1000;
export const MAX_AUDIT_PER_PAGE = 1000;
export const DEFAULT_AUDIT_PAGE = 100;
/** Jobs one browser token may be scoped to. */
export const MAX_JOBS_PER_BROWSER_TOKEN = 100;
/** Per-phase timeouts a launch may set: at least 100 ms, at most 7 days. */
export const MIN_TIMEOUT_MS = 100;
export const MAX_TIMEOUT_MS = 7 * 24 * 3600_000;

const SHA256_RE = /^[0-9a-f]{64}$/;

/** A non-negative decimal integer in a query string, checked against a range after conversion. */
function intParam(min: number, max: number) {
  return z
    .string()
    .regex(/^\d{1,16}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
}

const timeoutMs = z.number().int().min(MIN_TIMEOUT_MS).max(MAX_TIMEOUT_MS);

export const deviceIdSchema = z
  .string()
  .max(64)
  .refine(
    (v) => parseDeviceId(v) !== null,
    'must be <portalId>.<service>.<instance>, e.g. c0619ab1d2e3.solarcharger.258',
  )
  .describe('Device id `<portalId>.<service>.<instance>`');

export const portalIdSchema = z
  .string()
  .regex(PORTAL_ID_RE, 'must be 12 lowercase hex characters')
  .describe('GX portal id');

/** Limits that come from configuration, so the schemas that use them are built per app. */
export interface SchemaLimits {
  maxDevicesPerJob: number;
}

/** Body of `POST /api/jobs`: exactly one of `devices` (a list, in release order) and `filter`. */
export function launchJobSchema(limits: SchemaLimits) {
  return z
    .strictObject({
      firmwareId: z
        .string()
        .regex(SHA256_RE, 'must be the SHA-256 id of an uploaded image')
        .describe('Firmware id (its SHA-256)'),
      devices: z
        .array(deviceIdSchema)
        .min(1)
        .max(limits.maxDevicesPerJob)
        .optional()
        .describe('Devices, in release order (the first ones form the canary wave); or give `filter`'),
      filter: targetFilterSchema.optional(),
      rollout: rolloutLimitsSchema.optional(),
      abort: abortRuleSchema.optional(),
      schedule: scheduleSchema.optional(),
      retry: retryPolicySchema.optional(),
      allowDowngrade: z
        .boolean()
        .optional()
        .describe('Install on devices running a newer version (default: rejected `not-newer`)'),
      allowSameVersion: z
        .boolean()
        .optional()
        .describe('Reinstall on devices already running this version (default: rejected `not-newer`)'),
      timeouts: z
        .strictObject({
          preflightMs: timeoutMs,
          downloadingMs: timeoutMs,
          verifyingMs: timeoutMs,
          installingMs: timeoutMs,
          rebootingMs: timeoutMs,
          confirmingMs: timeoutMs,
          totalMs: timeoutMs,
        })
        .partial()
        .optional()
        .describe('Overrides of the configured per-phase and total timeouts, in milliseconds'),
    })
    .superRefine((body, ctx) => {
      if ((body.devices === undefined) === (body.filter === undefined)) {
        ctx.addIssue({ code: 'custom', message: 'give exactly one of devices and filter' });
      }
    });
}

export const jobListQuery = z.strictObject({
  limit: intParam(1, MAX_JOBS_PER_PAGE).optional().describe('Page size, default 100'),
  offset: intParam(0, 1_000_000_000).optional().describe('Jobs to skip, newest first'),
});

export const jobEventsQuery = z.strictObject({
  after: intParam(0, Number.MAX_SAFE_INTEGER)
    .optional()
    .describe('Return lines with seq greater than this (default 0)'),
  limit: intParam(1, MAX_EVENTS_PER_PAGE)
    .optional()
    .describe(`Page size, default and maximum ${MAX_EVENTS_PER_PAGE}`),
});

export const jobIdParam = z.strictObject({
  id: z.string().refine(isJobId, 'not a job id').describe('Job id'),
});

export const deviceIdParam = z.strictObject({ id: deviceIdSchema });
export const jobDeviceParams = z.strictObject({ id: jobIdParam.shape.id, deviceId: deviceIdSchema });

export const firmwareIdParam = z.strictObject({
  id: z
    .string()
    .regex(SHA256_RE, 'must be 64 lowercase hex characters')
    .describe('Firmware id (its SHA-256)'),
});

export const sha256Param = z.strictObject({
  sha256: z.string().regex(SHA256_RE, 'must be 64 lowercase hex characters').describe('SHA-256 of the image'),
});

export const productIdText = z
  .string()
  .refine((v) => parseProductId(v) !== null, 'must be a product id in hex, e.g. 0xA058 or A058')
  .transform((v) => parseProductId(v) as number);

export const deviceListQuery = z.strictObject({
  product: productIdText.optional().describe('Product id in hex (`0xA058` or `A058`)'),
  online: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  site: portalIdSchema.optional(),
  version: z
    .string()
    .refine(isVersion, 'must be a firmware version such as v3.70~33, v1.57 or v504')
    .optional()
    .describe('Installed version, exact match'),
  q: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('Case-insensitive text in the device id, product name or custom name'),
  limit: intParam(1, 1_000_000).optional().describe('Page size, default all'),
  offset: intParam(0, 1_000_000_000).optional(),
});

export const downloadQuery = z.strictObject({
  token: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe('Per-execution download token from the install command'),
});

const siteEntry = z.strictObject({
  portalId: portalIdSchema,
  name: z.string().min(1).max(120).optional(),
});

/** Body of `POST /api/sites` registering one site. */
export const registerSiteSchema = siteEntry;

/** Body of `POST /api/sites` registering many sites at once (the simulator CLI uses this form). */
export const registerSitesBulkSchema = z.strictObject({
  sites: z
    .array(siteEntry)
    .min(1)
    .max(MAX_SITES_PER_REQUEST)
    .refine(
      (sites) => new Set(sites.map((s) => s.portalId)).size === sites.length,
      'portal ids must not repeat',
    ),
});

/** Comma-separated product ids, deduplicated; at least one. */
const productList = z
  .string()
  .max(400)
  .transform((v, ctx) => {
    const parts = v
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    const ids: number[] = [];
    for (const p of parts) {
      const id = parseProductId(p);
      if (id === null) {
        ctx.addIssue({ code: 'custom', message: `"${p}" is not a product id (hex, e.g. 0xA058)` });
        return z.NEVER;
      }
      if (!ids.includes(id)) ids.push(id);
    }
    if (ids.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'name at least one product id' });
      return z.NEVER;
    }
    return ids;
  });

/**
 * Metadata of `POST /api/firmware`, from the query string or from `X-Firmware-*` headers
 * (the query wins when both are given). Headers carry Latin-1 only: send non-ASCII names in the query.
 */
export const firmwareUploadMeta = z.strictObject({
  version: z
    .string()
    .refine(isVersion, 'must be a firmware version such as v3.70~33, v1.57 or v504')
    .describe('Firmware version'),
  products: productList.describe('Comma-separated product ids the image fits, hex (`0xA058,0xA389`)'),
  name: z.string().min(1).max(120).optional().describe('Display name; default: the first product name'),
  notes: z.string().max(2000).optional().describe('Release notes'),
});

export const auditQuery = z.strictObject({
  limit: intParam(1, MAX_AUDIT_PER_PAGE).optional().describe(`Page size, default ${DEFAULT_AUDIT_PAGE}`),
  before: intParam(1, Number.MAX_SAFE_INTEGER)
    .optional()
    .describe("Only entries with a smaller id: pass the previous page's `nextBefore`"),
});

/** Body of `POST /api/mqtt-credentials` (optional: no body means every job). */
export const mqttCredentialsBody = z.strictObject({
  jobs: z
    .array(z.string().max(40).refine(isJobId, 'not a job id'))
    .min(1)
    .max(MAX_JOBS_PER_BROWSER_TOKEN)
    .optional()
    .describe('Job ids the token may watch; omitted: every job. `fleetflash/devices/#` is always allowed'),
});

/** The error body of every 4xx/5xx answer. */
export const errorResponseSchema = z.strictObject({
  error: z.strictObject({
    code: z.string().describe('Stable machine-readable code, e.g. validation_failed, job_not_found'),
    message: z.string(),
    details: z.unknown().optional(),
  }),
});
