/**
 * Records every mutating API call of an authenticated operator in the audit trail, whatever its
 * outcome (accepted, refused by validation or role, failed, or abandoned by the client).
 *
 * It runs right after `authenticate`, before routing, so it also sees calls that a role check or a
 * schema refuses. Calls without a valid token are not recorded: they name nobody, and letting anyone
 * write to a capped trail would let them push the real entries out of it. Those are in the request
 * log and held back by the failed-attempt limit instead.
 *
 * The action comes from the method and path; routes add what only they know (the new job's id, the
 * image's hash) with {@link auditTarget}. Nothing from bodies or headers is copied wholesale.
 */
import type { RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { AuditAction, AuditLog, AuditOutcome, AuditTarget } from '../audit/audit-log.js';
import { isJobId, parseDeviceId } from '../protocol/index.js';
import { operatorOf } from './auth-middleware.js';
import { requestIdOf } from './request-log.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const TARGET_LOCAL = 'auditTarget';
const MAX_PATH_CHARS = 256;

/** Adds ids to the audit entry of this request (no-op for requests that are not audited). */
export function auditTarget(res: Response, target: AuditTarget): void {
  const locals = res.locals as Record<string, unknown>;
  locals[TARGET_LOCAL] = { ...(locals[TARGET_LOCAL] as AuditTarget | undefined), ...target };
}

/** The action and the ids the path names, for a path relative to `/api`. */
export function classify(method: string, path: string): { action: AuditAction; target: AuditTarget } {
  const parts = path.split('/').filter(Boolean);
  if (method === 'POST') {
    if (parts.length === 1 && parts[0] === 'jobs') return { action: 'job.launch', target: {} };
    if (parts.length === 3 && parts[0] === 'jobs' && parts[2] === 'abort') {
      return { action: 'job.abort', target: isJobId(parts[1]) ? { jobId: parts[1] } : {} };
    }
    if (parts.length === 5 && parts[0] === 'jobs' && parts[2] === 'devices' && parts[4] === 'cancel') {
      return {
        action: 'execution.cancel',
        target: {
          ...(isJobId(parts[1]) ? { jobId: parts[1] } : {}),
          ...(parseDeviceId(parts[3]) ? { deviceId: parts[3] } : {}),
        },
      };
    }
    if (parts.length === 1 && parts[0] === 'firmware') return { action: 'firmware.upload', target: {} };
    if (parts.length === 1 && parts[0] === 'sites') return { action: 'sites.register', target: {} };
    if (parts.length === 1 && parts[0] === 'mqtt-credentials')
      return { action: 'mqtt-credentials.issue', target: {} };
  }
  if (method === 'DELETE' && parts.length === 2 && parts[0] === 'firmware') {
    return {
      action: 'firmware.delete',
      target: /^[0-9a-f]{64}$/.test(parts[1]) ? { firmwareId: parts[1] } : {},
    };
  }
  return { action: 'other', target: {} };
}

function outcomeOf(status: number | null): AuditOutcome {
  if (status === null) return 'aborted';
  if (status >= 500) return 'failed';
  if (status >= 400) return 'refused';
  return 'succeeded';
}

/** Middleware for the `/api` router, after authenticate. */
export function auditTrail(audit: AuditLog, logger: Logger): RequestHandler {
  return (req, res, next) => {
    if (!MUTATING.has(req.method)) return next();
    const operator = operatorOf(res);
    const { action, target } = classify(req.method, req.path);
    const fullPath = req.originalUrl.split('?', 1)[0].slice(0, MAX_PATH_CHARS);
    let recorded = false;
    const record = (): void => {
      if (recorded) return;
      recorded = true;
      const status = res.headersSent ? res.statusCode : null;
      const extra = (res.locals as Record<string, unknown>)[TARGET_LOCAL] as AuditTarget | undefined;
      audit
        .record({
          at: new Date().toISOString(),
          actor: operator.name,
          role: operator.role,
          action,
          method: req.method,
          path: fullPath,
          target: { ...target, ...extra },
          status,
          outcome: outcomeOf(status),
          requestId: requestIdOf(res),
          remoteAddress: req.ip ?? req.socket.remoteAddress ?? null,
        })
        // The call itself already happened; losing its entry is an operational error, not the client's.
        .catch((err: unknown) =>
          logger.error({ err, action, actor: operator.name }, 'audit entry not recorded'),
        );
    };
    res.once('finish', record);
    res.once('close', record);
    next();
  };
}
