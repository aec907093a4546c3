/**
 * One log line per request: method, path (never the query string: download tokens travel there),
 * status, duration, request id and operator name. Headers are never logged, so neither is
 * `Authorization`.
 */
import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { maybeOperatorOf } from './auth-middleware.js';

/** A caller's `X-Request-Id` is reused only when it is short and plain: it goes into logs verbatim. */
const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
const REQUEST_ID_LOCAL = 'requestId';

/** The id of this request (from `X-Request-Id` or generated); '' before the logger ran. */
export function requestIdOf(res: Response): string {
  const id = (res.locals as Record<string, unknown>)[REQUEST_ID_LOCAL];
  return typeof id === 'string' ? id : '';
}

/** Path without the query string: `req.path` is relative to a router mount point, originalUrl is not. */
function pathOf(req: Request): string {
  const url = req.originalUrl;
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** Assigns the request id, echoes it in `X-Request-Id`, and logs once when the response ends or the client goes away. */
export function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const given = req.get('x-request-id');
    const reqId = given !== undefined && REQUEST_ID_RE.test(given) ? given : randomUUID();
    (res.locals as Record<string, unknown>)[REQUEST_ID_LOCAL] = reqId;
    res.setHeader('X-Request-Id', reqId);
    let logged = false;
    const done = (): void => {
      if (logged) return;
      logged = true;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.info(
        {
          reqId,
          method: req.method,
          path: pathOf(req),
          // No status was sent when the client left first.
          status: res.headersSent ? res.statusCode : null,
          ms: Math.round(ms * 10) / 10,
          operator: maybeOperatorOf(res)?.name ?? null,
          // A response that never finished (client left mid-download) is worth telling apart.
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  };
}
