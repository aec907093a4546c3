/**
 * Applies the zod schemas to requests. Every failure becomes a 400 `validation_failed` whose details
 * list the issues (capped, so 20,000 bad device ids do not make a 2 MB error body).
 */
import type { z } from 'zod';
import { AppError, BadRequestError } from '../errors.js';

/** Most issues reported in one error body; the rest are counted in `more`. */
export const MAX_REPORTED_ISSUES = 20;

/** One validation problem as the API reports it. */
export interface IssueDetail {
  /** Where: `body`, `query` or `params`, then the path inside it, dot-separated (`body.devices.3`). */
  path: string;
  code: string;
  message: string;
}

function toDetails(where: string, error: z.ZodError): { issues: IssueDetail[]; more?: number } {
  const issues = error.issues.slice(0, MAX_REPORTED_ISSUES).map((i) => ({
    path: [where, ...i.path.map(String)].join('.'),
    code: i.code,
    message: i.message,
  }));
  const more = error.issues.length - issues.length;
  return more > 0 ? { issues, more } : { issues };
}

/** Validates `value` (a body or query) against `schema`; throws 400 `validation_failed` on any issue. */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: 'body' | 'query' | 'headers',
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const summary = result.error.issues
    .slice(0, 3)
    .map((i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`)
    .join('; ');
  throw new BadRequestError(
    `invalid request ${where}: ${summary}`,
    toDetails(where, result.error),
    'validation_failed',
  );
}

/**
 * Validates path parameters. A malformed id names nothing that could exist, so it answers the same
 * error as an unknown one (e.g. 404 `job_not_found`): clients need only one branch.
 */
export function parseParams<S extends z.ZodType>(
  schema: S,
  params: unknown,
  notFound: () => AppError,
): z.output<S> {
  const result = schema.safeParse(params);
  if (!result.success) throw notFound();
  return result.data;
}
