/**
 * The one place errors become HTTP answers: `{"error": {"code", "message", "details"?}}`.
 * AppErrors carry their own status and code; body-parser and router errors are client mistakes with
 * a known status; anything else is a bug, logged with its stack and answered 500 without one.
 */
import type { ServerResponse } from 'node:http';
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { AppError } from '../errors.js';
import { requestIdOf } from './request-log.js';

/** The JSON error body every failing route answers with. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** Codes for the errors that body-parser (via http-errors) tags with a `type`. */
const BODY_PARSER_CODES: Record<string, { status: number; code: string; message: string }> = {
  'entity.parse.failed': { status: 400, code: 'invalid_json', message: 'the request body is not valid JSON' },
  'entity.too.large': { status: 413, code: 'payload_too_large', message: 'the request body is too large' },
  'encoding.unsupported': {
    status: 415,
    code: 'unsupported_media_type',
    message: 'unsupported Content-Encoding',
  },
  'charset.unsupported': { status: 415, code: 'unsupported_media_type', message: 'unsupported charset' },
  'request.aborted': { status: 400, code: 'request_aborted', message: 'the request was aborted' },
  'request.size.invalid': {
    status: 400,
    code: 'bad_request',
    message: 'the body size does not match Content-Length',
  },
};

interface HttpishError {
  type?: unknown;
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  message?: unknown;
}

/** Maps any thrown value to status and body; null means "a bug: answer 500 and log the stack". */
export function toErrorAnswer(err: unknown): { status: number; body: ErrorBody } | null {
  if (err instanceof AppError) {
    const error: ErrorBody['error'] = { code: err.code, message: err.message };
    if (err.details !== undefined) error.details = err.details;
    return { status: err.status, body: { error } };
  }
  if (typeof err !== 'object' || err === null) return null;
  const e = err as HttpishError;
  if (typeof e.type === 'string' && BODY_PARSER_CODES[e.type]) {
    const m = BODY_PARSER_CODES[e.type];
    return { status: m.status, body: { error: { code: m.code, message: m.message } } };
  }
  // http-errors from the router or body-parser (e.g. a malformed %-escape in a path: 400) that are
  // client errors by status; their messages are written to be shown (`expose`).
  const status =
    typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 0;
  if (status >= 400 && status < 500) {
    const message = e.expose === true && typeof e.message === 'string' ? e.message : 'bad request';
    return { status, body: { error: { code: status === 404 ? 'not_found' : 'bad_request', message } } };
  }
  return null;
}

/** Where a failed request came from, for the log line of an error that is not a client's. */
export interface ErrorContext {
  reqId: string;
  method: string | undefined;
  path: string;
}

/**
 * Answers `err` on any Node response (Express's or a plain handler's): the JSON error body with its
 * status, or 500 and a log line with the stack for a bug. Once the response has started the status
 * is gone, so the only honest signal left is cutting the connection.
 */
export function sendError(logger: Logger, err: unknown, res: ServerResponse, at: ErrorContext): void {
  if (res.headersSent) {
    logger.warn({ err, reqId: at.reqId, path: at.path }, 'error after response started');
    res.destroy();
    return;
  }
  const answer = toErrorAnswer(err);
  if (!answer) logger.error({ err, ...at }, 'unhandled error in request');
  const { status, body } = answer ?? {
    status: 500,
    body: { error: { code: 'internal', message: 'internal error' } } satisfies ErrorBody,
  };
  // Replaces a content type set for the body the route meant to send (e.g. octet-stream).
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(body));
}

/** Express error middleware; must be registered last. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, _next) => {
    sendError(logger, err, res, { reqId: requestIdOf(res), method: req.method, path: req.path });
  };
}

/** Final handler: any route nobody answered is a JSON 404 (also outside `/api`, e.g. a missing portal file). */
export function notFoundHandler(): RequestHandler {
  return (req, _res, next) => {
    next(new AppError(404, 'not_found', `no route for ${req.method} ${req.path}`));
  };
}
