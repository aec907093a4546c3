/**
 * Bearer-token authentication for `/api` (and whatever else the entry point mounts behind it) and
 * role checks for mutating routes. The token itself never leaves this module: not in logs, not in
 * errors.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { roleAllows, type Operator, type OperatorAuth } from '../auth/operator-auth.js';
import type { OperatorRole } from '../config.js';
import { ForbiddenError, TooManyRequestsError, UnauthorizedError } from '../errors.js';
import type { FailedAuthLimiter } from './auth-rate-limit.js';

/** Longer "tokens" are not tokens; refusing them early keeps hashing cheap. */
const MAX_TOKEN_LENGTH = 4096;
const BEARER_RE = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

const OPERATOR_LOCAL = 'operator';

/** The authenticated operator of this request (set by {@link authenticate}). */
export function operatorOf(res: Response): Operator {
  const op = (res.locals as Record<string, unknown>)[OPERATOR_LOCAL] as Operator | undefined;
  // A route reached without authenticate is a wiring bug, not a client error.
  if (!op) throw new Error('operatorOf: route is not behind authenticate()');
  return op;
}

/** The operator if the request was authenticated, else null (for the request log). */
export function maybeOperatorOf(res: Response): Operator | null {
  return ((res.locals as Record<string, unknown>)[OPERATOR_LOCAL] as Operator | undefined) ?? null;
}

/** The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1), or null when it is not one. */
export function bearerToken(header: string): string | null {
  const m = BEARER_RE.exec(header);
  return m && m[1].length <= MAX_TOKEN_LENGTH ? m[1] : null;
}

/**
 * Resolves `Authorization: Bearer <token>` to an operator. Missing or wrong tokens answer 401 with
 * `WWW-Authenticate: Bearer` (RFC 6750 §3); an address with too many wrong tokens answers 429.
 */
export function authenticate(operators: OperatorAuth, limiter: FailedAuthLimiter): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    const waitMs = limiter.blockedForMs(address);
    if (waitMs > 0) {
      res.setHeader('Retry-After', String(Math.ceil(waitMs / 1000)));
      throw new TooManyRequestsError('too many failed authentication attempts; try again later');
    }
    const header = req.get('authorization');
    if (header === undefined) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="fleetflash"');
      throw new UnauthorizedError();
    }
    const token = bearerToken(header);
    const operator = token === null ? null : operators.resolve(token);
    if (!operator) {
      limiter.recordFailure(address);
      res.setHeader('WWW-Authenticate', 'Bearer realm="fleetflash", error="invalid_token"');
      throw new UnauthorizedError('the bearer token is not valid');
    }
    (res.locals as Record<string, unknown>)[OPERATOR_LOCAL] = operator;
    next();
  };
}

/** Lets the request through only when the operator's role allows `needed`; else 403 `forbidden`. */
export function requireRole(needed: OperatorRole): RequestHandler {
  return (_req: Request, res: Response, next: NextFunction) => {
    const op = operatorOf(res);
    if (!roleAllows(op.role, needed))
      throw new ForbiddenError(`this needs the ${needed} role; ${op.name} is a ${op.role}`);
    next();
  };
}
