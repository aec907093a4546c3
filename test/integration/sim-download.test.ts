import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { download } from '../../devices-sim/downloader.js';
import { Scheduler } from '../../devices-sim/scheduler.js';

/** An image server that sends the first `firstBytes` at once and then holds the response open until closed. */
async function slowServer(image: Buffer, firstBytes: number) {
  const open = new Set<http.ServerResponse>();
  let closedByClient = 0;
  const server = http.createServer((_req, res) => {
    open.add(res);
    res.on('close', () => {
      open.delete(res);
      if (!res.writableFinished) closedByClient++;
    });
    res.writeHead(200, { 'Content-Length': image.length });
    res.write(image.subarray(0, firstBytes));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/firmware/x?token=t`,
    open: () => open.size,
    closedByClient: () => closedByClient,
    close: async () => {
      for (const res of open) res.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('simulated device download', () => {
  const image = Buffer.alloc(64 * 1024, 7);
  const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  let server: Awaited<ReturnType<typeof slowServer>>;
  const scheduler = new Scheduler();

  beforeEach(async () => {
    server = await slowServer(image, 1024);
  });
  afterEach(async () => {
    await server.close();
  });
  afterAll(() => {
    agents.http.destroy();
    agents.https.destroy();
    scheduler.stop();
  });

  const options = (signal: AbortSignal, onBytes: (n: number, total: number) => void = () => undefined) => ({
    url: server.url,
    size: image.length,
    bytesPerSec: 1e9,
    scheduler,
    agents,
    signal,
    onBytes,
  });

  it('stops every download in flight on one signal when it is aborted, and closes their connections', async () => {
    const stop = new AbortController();
    const downloads = 20;
    const receiving = new Set<number>();
    let allReceiving!: () => void;
    const receivingAll = new Promise<void>((resolve) => (allReceiving = resolve));
    const results = Array.from({ length: downloads }, (_, i) =>
      download(
        options(stop.signal, () => {
          receiving.add(i);
          if (receiving.size === downloads) allReceiving();
        }),
      ).then(
        () => 'finished',
        (err: Error) => err.name,
      ),
    );
    await receivingAll;
    expect(server.open()).toBe(downloads);
    stop.abort();
    expect(await Promise.all(results)).toEqual(Array(downloads).fill('AbortError'));
    await new Promise<void>((resolve) => {
      const check = () => (server.closedByClient() === downloads ? resolve() : setImmediate(check));
      check();
    });
    expect(server.open()).toBe(0);
  });

  it('does not start a download on a signal already aborted', async () => {
    const stop = new AbortController();
    stop.abort();
    await expect(download(options(stop.signal))).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('finishes with the right hash when not aborted', async () => {
    await server.close();
    const whole = http.createServer((_req, res) => res.end(image));
    await new Promise<void>((r) => whole.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(whole.address() as AddressInfo).port}/firmware/x`;
    try {
      const result = await download({ ...options(new AbortController().signal), url });
      expect(result).toEqual({ bytes: image.length, sha256: createHash('sha256').update(image).digest('hex'), requests: 1 });
    } finally {
      await new Promise<void>((r) => whole.close(() => r()));
      server = await slowServer(image, 1024);
    }
  });
});
