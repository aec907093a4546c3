/**
 * `GET|HEAD /firmware/<sha256>?token=…`: devices download images here with a short-lived token bound
 * to one image (from the install command), no bearer token. Range support, so a device that lost its
 * connection resumes where it stopped. Small images are sent from memory (store/image-cache.ts), large
 * ones streamed from disk.
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { TokenSigner } from '../auth/tokens.js';
import { AppError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.js';
import type { FirmwareStore } from '../store/firmware-store.js';
import { decideRange } from './byte-range.js';
import { downloadQuery, sha256Param } from './schemas.js';
import { parseInput, parseParams } from './validate.js';

export interface FirmwareDownloadDeps {
  tokens: TokenSigner;
  firmware: FirmwareStore;
  logger: Logger;
}

/** Router for `/firmware`; mount it at `/firmware`. */
export function firmwareDownloadRouter(deps: FirmwareDownloadDeps): Router {
  const router = Router();
  router.get('/:sha256', (req, res) => serve(deps, req, res));
  return router;
}

async function serve(deps: FirmwareDownloadDeps, req: Request, res: Response): Promise<void> {
  const { sha256 } = parseParams(
    sha256Param,
    req.params,
    () => new NotFoundError('firmware', String(req.params.sha256).slice(0, 64)),
  );
  const { token } = parseInput(downloadQuery, req.query, 'query');
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
  res.type('application/octet-stream');
  if (
    req
      .get('if-none-match')
      ?.split(',')
      .some((t) => t.trim() === etag || t.trim() === `W/${etag}`)
  ) {
    res.status(304).end();
    return;
  }
  const ifRange = req.get('if-range');
  // If-Range with another validator means "the file changed: send it whole" (RFC 9110 §13.1.5).
  const decision =
    ifRange !== undefined && ifRange !== etag
      ? { kind: 'full' as const }
      : decideRange(req.get('range'), size);
  if (decision.kind === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${size}`);
    throw new AppError(416, 'range_not_satisfiable', `the image has ${size} bytes`, { size });
  }
  const start = decision.kind === 'partial' ? decision.start : 0;
  const end = decision.kind === 'partial' ? decision.end : size - 1;
  if (decision.kind === 'partial') {
    res.status(206);
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
