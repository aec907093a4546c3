/**
 * Request body guards: the media type a route accepts, and the JSON parser with its size limit.
 * The content-type check runs before any byte is read, so a wrong type never costs a parse.
 */
import express, { type Request, type RequestHandler } from 'express';
import { AppError } from '../errors.js';

/** 415 `unsupported_media_type` unless the request declares `type` (parameters such as charset allowed). */
export function requireContentType(type: string): RequestHandler {
  return (req, _res, next) => {
    if (!req.is(type)) {
      throw new AppError(415, 'unsupported_media_type', `Content-Type must be ${type}`, {
        received: req.get('content-type') ?? null,
      });
    }
    next();
  };
}

/** `application/json` only, objects and arrays only (`strict`), at most `limitBytes` after decompression. */
export function jsonBody(limitBytes: number): RequestHandler[] {
  return [
    requireContentType('application/json'),
    express.json({ limit: limitBytes, strict: true, type: 'application/json' }),
  ];
}

/** True when the request announces a body (RFC 9112 §6.3: Transfer-Encoding, or a non-zero Content-Length). */
function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Like {@link jsonBody} for routes whose body is optional: a request without one passes with
 * `req.body` undefined; one with a body must be JSON within the limit.
 */
export function optionalJsonBody(limitBytes: number): RequestHandler[] {
  const [checkType, parse] = jsonBody(limitBytes);
  return [
    (req, res, next) => {
      if (!hasBody(req)) return next();
      checkType(req, res, (err?: unknown) => (err ? next(err) : parse(req, res, next)));
    },
  ];
}
