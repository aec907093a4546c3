/**
 * `GET|HEAD /firmware/<sha256>?token=…`: devices download images here with a short-lived token bound
 * to one image (from the install command), no bearer token. Range support, so a device that lost its
 * connection resumes where it stopped. Small images are sent from memory (store/image-cache.ts), large
 * ones streamed from disk.
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import { pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type { TokenSigner } from '../auth/tokens.js';
import { AppError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.js';
import type { FirmwareStore } from '../store/firmware-store.js';
import { decideRange } from './byte-range.js';
import { sendError } from './error-handler.js';
import { logRequest } from './request-log.js';
import { downloadQuery, sha256Param } from './schemas.js';
import { parseInput, parseParams } from './validate.js';

export interface FirmwareDownloadDeps {
  tokens: TokenSigner;
  firmware: FirmwareStore;
  logger: Logger;
}

/**
 * `/firmware/<one segment>[/][?query]`: the requests {@link firmwareDownloads} answers, in origin
 * form or in absolute form (`http://host/firmware/…`, which a server must accept: RFC 9112 §3.2.2;
 * a device behind a proxy may send it, and the app's router took it before downloads left Express).
 */
const DOWNLOAD_TARGET_RE = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*)?\/firmware\/([^/?]+)\/?(?:\?(.*))?$/;

/**
 * The download endpoint as a plain Node request listener, in front of the Express app: it answers
 * GET and HEAD on `/firmware/<sha256>` and returns true, or returns false and leaves the request
 * (any other path or method) to the app. Every device of a job downloads once, each on a new
 * connection, in the process that also runs the embedded broker: without Express's router and
 * request/response extensions a 128 KB download costs that process about half the CPU
 * (`npm run bench:download`: 196 µs against 416 µs). Answers as the API does: the request log
 * line, `X-Request-Id`, `nosniff`, JSON errors (error-handler.ts).
 */
export function firmwareDownloads(
  deps: FirmwareDownloadDeps,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const target = DOWNLOAD_TARGET_RE.exec(req.url ?? '');
    if (!target) return false;
    const reqId = logRequest(deps.logger, req, res);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    serve(deps, req, res, target[1], target[2] ?? '').catch((err: unknown) =>
      sendError(deps.logger, err, res, { reqId, method: req.method, path: `/firmware/${target[1]}` }),
    );
    return true;
  };
}

/** The path segment decoded as a router would; as it came when it is not valid %-encoding (never a digest then). */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

async function serve(
  deps: FirmwareDownloadDeps,
  req: IncomingMessage,
  res: ServerResponse,
  segment: string,
  query: string,
): Promise<void> {
  const raw = decodeSegment(segment);
  const { sha256 } = parseParams(
    sha256Param,
    { sha256: raw },
    () => new NotFoundError('firmware', raw.slice(0, 64)),
  );
  // The same key=value parser as the app's ('simple'): a repeated key is an array, refused by the schema.
  const { token } = parseInput(downloadQuery, parseQuery(query), 'query');
  if (!token) throw new UnauthorizedError('a download token is required (?token=…)');
  // One answer for expired, forged and other-image tokens: the device's remedy is the same (a new job).
  if (!deps.tokens.verifyDownloadToken(token, sha256)) {
    throw new ForbiddenError('the download token is invalid, expired or for another image');
  }
  const image = await deps.firmware.image(sha256);
  if (image === null) throw new NotFoundError('firmware', sha256);
  const { size } = image;

  const etag = `"${sha256}"`;
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', etag);
  // Content-addressed: the bytes behind this URL never change, but the token in it expires.
  res.setHeader('Cache-Control', 'private, no-transform');
  res.setHeader('Content-Type', 'application/octet-stream');
  if (
    header(req, 'if-none-match')
      ?.split(',')
      .some((t) => t.trim() === etag || t.trim() === `W/${etag}`)
  ) {
    res.statusCode = 304;
    res.end();
    return;
  }
  const ifRange = header(req, 'if-range');
  // If-Range with another validator means "the file changed: send it whole" (RFC 9110 §13.1.5).
  const decision =
    ifRange !== undefined && ifRange !== etag
      ? { kind: 'full' as const }
      : decideRange(header(req, 'range'), size);
  if (decision.kind === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${size}`);
    throw new AppError(416, 'range_not_satisfiable', `the image has ${size} bytes`, { size });
  }
  const start = decision.kind === 'partial' ? decision.start : 0;
  const end = decision.kind === 'partial' ? decision.end : size - 1;
  if (decision.kind === 'partial') {
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  }
  res.setHeader('Content-Length', String(size === 0 ? 0 : end - start + 1));
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  if (image.bytes) {
    res.end(image.bytes.subarray(start, end + 1));
    return;
  }
  const file = createReadStream(deps.firmware.filePath(sha256), { start, end });
  pipeline(file, res, (err) => {
    // A device dropping mid-download is routine (it resumes with Range); only disk errors matter.
    if (!err) return;
    if ((err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      deps.logger.debug({ sha256, start, end }, 'firmware download ended early by the client');
    } else {
      deps.logger.warn({ err, sha256 }, 'firmware download failed');
    }
  });
}

/** A request header (Node joins a repeated one into one string). */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}
