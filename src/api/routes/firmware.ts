/**
 * `/api/firmware`: upload (raw body streamed into the content-addressed store), list, get, delete
 * (refused with 409 while a job that has not finished uses the image).
 * Metadata comes from the query string or `X-Firmware-*` headers, so the body is the image itself
 * and `curl --data-binary @image.swu` is all a client needs.
 */
import type { Request, Response } from 'express';
import { Router } from 'express';
import { PassThrough } from 'node:stream';
import { BadRequestError, NotFoundError, PayloadTooLargeError } from '../../errors.js';
import { formatProductId, productById } from '../../protocol/index.js';
import { auditTarget } from '../audit-trail.js';
import { requireRole, operatorOf } from '../auth-middleware.js';
import { requireContentType } from '../body.js';
import type { ApiDeps } from '../deps.js';
import { firmwareIdParam, firmwareUploadMeta } from '../schemas.js';
import { parseInput, parseParams } from '../validate.js';

const META_FIELDS = ['version', 'products', 'name', 'notes'] as const;

/** Query parameters win over `X-Firmware-<Field>` headers. Unknown query keys stay in, so strict parsing flags them. */
function rawMeta(req: Request): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of META_FIELDS) {
    const h = req.get(`x-firmware-${f}`);
    if (h !== undefined) out[f] = h;
  }
  return { ...out, ...(req.query as Record<string, unknown>) };
}

/** Rejects, before reading the body, uploads that say they are empty or too large. */
function checkDeclaredSize(req: Request, res: Response, maxBytes: number): void {
  const declared = req.get('content-length');
  const chunked = req.get('transfer-encoding') !== undefined;
  if (declared === undefined && !chunked) {
    throw new BadRequestError('the request has no body', undefined, 'empty_body');
  }
  if (declared === undefined) return;
  const n = Number(declared);
  if (n === 0) throw new BadRequestError('the firmware image is empty', undefined, 'empty_body');
  if (n > maxBytes) {
    // Reading (and discarding) the announced bytes would only waste bandwidth: close instead.
    res.setHeader('Connection', 'close');
    throw new PayloadTooLargeError(`firmware images are limited to ${maxBytes} bytes; this one has ${n}`);
  }
}

/**
 * The request as a stream the store may destroy. The store's pipeline destroys its source on error,
 * and destroying an IncomingMessage destroys the socket, which would lose our error answer; so it
 * gets a PassThrough, and a client that disconnects mid-upload fails the store's pipeline.
 */
function uploadStream(req: Request): PassThrough {
  const body = new PassThrough();
  // The client went away (ECONNRESET "aborted" or a close before the end): a client event, not a bug.
  const aborted = (): void => {
    body.destroy(new BadRequestError('the upload was aborted', undefined, 'request_aborted'));
  };
  req.once('error', aborted);
  req.once('close', () => {
    if (!req.readableEnded) aborted();
  });
  req.pipe(body);
  return body;
}

/** Router for `/api/firmware` (mount behind authenticate). */
export function firmwareRouter(deps: ApiDeps): Router {
  const router = Router();
  const maxBytes = deps.config.maxFirmwareBytes;

  router.post(
    '/',
    requireRole('operator'),
    requireContentType('application/octet-stream'),
    async (req, res) => {
      const meta = parseInput(firmwareUploadMeta, rawMeta(req), 'query');
      auditTarget(res, { firmwareVersion: meta.version });
      checkDeclaredSize(req, res, maxBytes);
      const by = operatorOf(res).name;
      const first = meta.products[0];
      const name = meta.name ?? productById(first)?.name ?? `product ${formatProductId(first)}`;
      const body = uploadStream(req);
      try {
        const firmware = await deps.firmware.put(
          body,
          { version: meta.version, productIds: meta.products, name, notes: meta.notes ?? '' },
          by,
        );
        auditTarget(res, { firmwareId: firmware.id });
        deps.logger.info(
          { firmwareId: firmware.id, size: firmware.size, version: firmware.version, by },
          'firmware uploaded',
        );
        res.status(201).location(`/api/firmware/${firmware.id}`).json({ firmware });
      } catch (err) {
        // Oversize or duplicate: discard the rest of the body so the client reads our answer instead
        // of a reset connection. Node's requestTimeout bounds how long a hostile sender can keep this up.
        req.unpipe(body);
        req.resume();
        throw err;
      }
    },
  );

  router.get('/', async (_req, res) => {
    res.json({ firmware: await deps.firmware.list() });
  });

  router.delete('/:id', requireRole('operator'), async (req, res) => {
    const { id } = parseParams(
      firmwareIdParam,
      req.params,
      () => new NotFoundError('firmware', String(req.params.id).slice(0, 64)),
    );
    auditTarget(res, { firmwareId: id });
    await deps.deleteFirmware(id, operatorOf(res).name);
    res.status(204).end();
  });

  router.get('/:id', async (req, res) => {
    const { id } = parseParams(
      firmwareIdParam,
      req.params,
      () => new NotFoundError('firmware', String(req.params.id).slice(0, 64)),
    );
    const firmware = await deps.firmware.get(id);
    if (!firmware) throw new NotFoundError('firmware', id);
    res.json({ firmware });
  });

  return router;
}
