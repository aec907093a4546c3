/**
 * The rollout parts of `POST /api/jobs` as zod schemas: target filter, rollout limits and waves,
 * abort rule, schedule, retry policy. Strict objects throughout, so a misspelt option is a 400, not
 * silently ignored.
 */
import { z } from 'zod';
import { isVersion, parseProductId, PORTAL_ID_RE } from '../protocol/index.js';
import { isTimeZone, parseHhMm } from '../rollout/schedule-window.js';

/** Upper bound of maxConcurrent and perMinute: far above any fleet, low enough to catch typos. */
export const MAX_RATE = 100_000;
export const MAX_RETRY_ATTEMPTS = 10;
export const MIN_BACKOFF_MS = 100;
export const MAX_BACKOFF_MS = 3600_000;

const percent = z.number().min(0).max(100);

const productIdValue = z
  .union([z.number().int(), z.string()])
  .refine((v) => parseProductId(v) !== null, 'must be a product id: a number or hex such as 0xA058')
  .transform((v) => parseProductId(v) as number);

/** `filter` of a launch: devices matching every given criterion. */
export const targetFilterSchema = z
  .strictObject({
    products: z
      .array(productIdValue)
      .min(1)
      .max(100)
      .optional()
      .describe('Product ids (numbers or hex strings); default: the products the image fits'),
    versions: z
      .array(z.string().refine(isVersion, 'must be a firmware version such as v3.70~33, v1.57 or v504'))
      .min(1)
      .max(100)
      .optional()
      .describe('Installed versions, exact'),
    sites: z
      .array(z.string().regex(PORTAL_ID_RE, 'must be a portal id'))
      .min(1)
      .max(20_000)
      .optional()
      .describe('Portal ids'),
  })
  .describe('Devices in the inventory matching every given criterion, resolved at launch');

const canarySchema = z
  .union([
    z.number().int().min(1),
    z
      .string()
      .regex(/^\d{1,2}(\.\d+)?%$/, 'must be a device count or a percentage below 100, e.g. "5%"')
      .refine((v) => Number(v.slice(0, -1)) > 0, 'must be above 0%')
      .transform((v) => v as `${number}%`),
  ])
  .describe('Size of the first wave: a device count, or a share such as "5%"');

export const rolloutLimitsSchema = z
  .strictObject({
    maxConcurrent: z.number().int().min(1).max(MAX_RATE).optional().describe('Executions in flight at most'),
    perMinute: z
      .number()
      .int()
      .min(1)
      .max(MAX_RATE)
      .optional()
      .describe('Executions started in any 60 s at most'),
    waves: z
      .strictObject({
        canary: canarySchema,
        successThresholdPercent: percent.describe(
          'Share of the canary that must succeed before the rest starts; below it the job is aborted',
        ),
      })
      .optional(),
  })
  .describe('How fast executions are released');

export const abortRuleSchema = z
  .strictObject({
    failureThresholdPercent: z
      .number()
      .gt(0)
      .max(100)
      .describe('Abort once this share of finished executions failed'),
    minExecuted: z.number().int().min(1).describe('…counting only once at least this many have finished'),
  })
  .describe('Abort rule: remaining executions are canceled, in-flight ones finish');

const hhmm = z.string().refine((v) => parseHhMm(v) !== null, 'must be HH:MM (24 h)');

export const scheduleSchema = z
  .strictObject({
    startAt: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('Release nothing before this time (ISO 8601)'),
    window: z
      .strictObject({
        start: hhmm,
        end: hhmm,
        tz: z
          .string()
          .max(64)
          .refine(isTimeZone, 'must be an IANA time zone such as UTC or Europe/Amsterdam')
          .optional(),
      })
      .refine((w) => w.start !== w.end, 'start and end must differ')
      .optional()
      .describe(
        'Daily maintenance window [start, end) in tz (default UTC); wraps past midnight when end < start',
      ),
  })
  .describe('When executions may start; in-flight ones always finish');

export const retryPolicySchema = z
  .strictObject({
    maxAttempts: z
      .number()
      .int()
      .min(1)
      .max(MAX_RETRY_ATTEMPTS)
      .optional()
      .describe('Attempts in all (1: no retry); default 3'),
    backoffMs: z
      .number()
      .int()
      .min(MIN_BACKOFF_MS)
      .max(MAX_BACKOFF_MS)
      .optional()
      .describe('Pause before the first retry, doubling; default 10000'),
  })
  .describe(
    'Retries of transient failures before the point of no return (device offline, unreachable); never after it',
  );
