/**
 * One log line per request: method, path (never the query string: download tokens travel there),
 * status, duration, request id and operator name. Headers are never logged, so neither is
 * `Authorization`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler, Response } from 'express';
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

/** The path of a request target, without the query string (read before any router rewrites `req.url`). */
function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * Assigns the request id (echoed in `X-Request-Id`) and logs once when the response ends or the
 * client goes away; returns the id. Plain Node objects: the firmware downloads use it without Express.
 * `operator` names who made the request, asked when the line is written.
 */
export function logRequest(
  logger: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  operator: () => string | null = () => null,
): string {
  const started = process.hrtime.bigint();
  const given = req.headers['x-request-id'];
  const reqId = typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
  const path = pathOf(req.url ?? '/');
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
        path,
        // No status was sent when the client left first.
        status: res.headersSent ? res.statusCode : null,
        ms: Math.round(ms * 10) / 10,
        operator: operator(),
        // A response that never finished (client left mid-download) is worth telling apart.
        ...(res.writableFinished ? {} : { aborted: true }),
      },
      'request',
    );
  };
  res.once('finish', done);
  res.once('close', done);
  return reqId;
}

/** {@link logRequest} for the Express app; the id is kept for {@link requestIdOf}. */
export function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    (res.locals as Record<string, unknown>)[REQUEST_ID_LOCAL] = logRequest(
      logger,
      req,
      res,
      () => maybeOperatorOf(res)?.name ?? null,
    );
    next();
  };
}
