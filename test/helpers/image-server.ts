/**
 * A tiny HTTP server on a free port serving firmware images with `Range` support, recording every
 * request so tests can check resumes and that the download token was passed untouched.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

export interface ServedImage {
  /** Download URL, including `?token=…`. */
  url: string;
  sha256: string;
  size: number;
  bytes: Buffer;
}

export interface ImageRequest {
  path: string;
  token: string | null;
  range: string | null;
  status: number;
}

export interface ImageServer {
  base: string;
  /** Adds an image of `size` random bytes (or the given bytes) under `/firmware/<sha256>`. */
  add(sizeOrBytes: number | Buffer, token?: string): ServedImage;
  requests: ImageRequest[];
  close(): Promise<void>;
}

export async function startImageServer(): Promise<ImageServer> {
  const images = new Map<string, Buffer>();
  const requests: ImageRequest[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const bytes = images.get(url.pathname);
    const range = req.headers.range ?? null;
    const log = (status: number) =>
      requests.push({ path: url.pathname, token: url.searchParams.get('token'), range, status });
    if (!bytes) {
      log(404);
      res.writeHead(404).end();
      return;
    }
    const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (m) {
      const start = Number(m[1]);
      const end = m[2] ? Math.min(Number(m[2]), bytes.length - 1) : bytes.length - 1;
      if (start >= bytes.length) {
        log(416);
        res.writeHead(416, { 'Content-Range': `bytes */${bytes.length}` }).end();
        return;
      }
      log(206);
      res.writeHead(206, {
        'Content-Length': end - start + 1,
        'Content-Range': `bytes ${start}-${end}/${bytes.length}`,
      });
      res.end(bytes.subarray(start, end + 1));
      return;
    }
    log(200);
    res.writeHead(200, { 'Content-Length': bytes.length, 'Accept-Ranges': 'bytes' });
    res.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    base,
    requests,
    add(sizeOrBytes, token = 'tok-123') {
      const bytes = typeof sizeOrBytes === 'number' ? randomBytes(sizeOrBytes) : sizeOrBytes;
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      images.set(`/firmware/${sha256}`, bytes);
      return { url: `${base}/firmware/${sha256}?token=${token}`, sha256, size: bytes.length, bytes };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
