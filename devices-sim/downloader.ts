/**
 * Downloads a firmware image over HTTP(S) the way a device on a poor link would: streamed, SHA-256
 * computed on the fly, throttled to the site's link speed, resumed with `Range: bytes=<n>-` after a
 * dropped connection. The URL is used exactly as given (its short-lived `token` query included).
 */
import { createHash, type Hash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Scheduler } from './scheduler.js';
import { SIM_ERROR_CODES } from './sim-errors.js';

export interface DownloadOptions {
  url: string;
  /** Expected size: more bytes than this is an error at once. */
  size: number;
  /** Wall-clock link speed. */
  bytesPerSec: number;
  scheduler: Scheduler;
  agents: { http: http.Agent; https: https.Agent };
  /** Aborts the transfer (fleet stop). */
  signal: AbortSignal;
  /** Called for every chunk received, with the running total of this download. */
  onBytes(chunkBytes: number, received: number): void;
  /** `dropMidDownload`: destroy the connection once when this many bytes have arrived. */
  dropAtBytes?: number | null;
  /** `downloadStall`: stop reading at this many bytes, then give up after `stallMs`. */
  stallAtBytes?: number | null;
  stallMs?: number;
  /** Attempts without progress before giving up. */
  maxAttempts?: number;
  retryBaseMs?: number;
  /** No byte for this long (outside a throttle or stall pause) counts as a dropped connection. */
  idleTimeoutMs?: number;
}

export interface DownloadResult {
  bytes: number;
  sha256: string;
  /** How many HTTP requests it took. */
  requests: number;
}

/** A failed download; `permanent` ones are not retried. `fileNotFound` maps to GX state 997. */
export class DownloadError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly permanent: boolean,
    readonly fileNotFound = false,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

interface Progress {
  hash: Hash;
  received: number;
  dropped: boolean;
  stalled: boolean;
  requests: number;
}

/** Downloads `options.url`; resolves with the byte count and hex SHA-256, or rejects with DownloadError. */
export async function download(options: DownloadOptions): Promise<DownloadResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  const state: Progress = {
    hash: createHash('sha256'),
    received: 0,
    dropped: false,
    stalled: false,
    requests: 0,
  };
  let failures = 0;
  for (;;) {
    const before = state.received;
    try {
      await attempt(options, state);
      return { bytes: state.received, sha256: state.hash.digest('hex'), requests: state.requests };
    } catch (err) {
      if (options.signal.aborted) throw err;
      if (err instanceof DownloadError && err.permanent) throw err;
      // Only attempts that made no progress count towards giving up: a flaky link that keeps
      // delivering eventually finishes.
      failures = state.received > before ? 1 : failures + 1;
      if (failures >= maxAttempts) {
        throw new DownloadError(
          SIM_ERROR_CODES.downloadFailed,
          `download failed after ${failures} attempts: ${describe(err)}`,
          true,
        );
      }
      await options.scheduler.sleep((options.retryBaseMs ?? 1000) * 2 ** (failures - 1));
    }
  }
}

function attempt(o: DownloadOptions, state: Progress): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    // During a stall only the stall's end settles the attempt, whatever the server does meanwhile.
    let holding = false;
    const settle = (err?: unknown, force = false) => {
      if (settled || (holding && !force)) return;
      settled = true;
      if (err === undefined) resolve();
      else reject(err);
    };
    const isHttps = o.url.startsWith('https:');
    const headers: Record<string, string> = state.received > 0 ? { Range: `bytes=${state.received}-` } : {};
    state.requests++;
    const request = isHttps ? https.request : http.request;
    const req = request(
      o.url,
      { headers, agent: isHttps ? o.agents.https : o.agents.http },
      (res) => {
        const status = res.statusCode ?? 0;
        const fail = (err: DownloadError) => {
          res.resume();
          req.destroy();
          settle(err);
        };
        if (status === 206) {
          const start = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '')?.[1];
          if (Number(start) !== state.received) {
            fail(
              new DownloadError(
                SIM_ERROR_CODES.downloadFailed,
                `range answer starts at ${start}, asked ${state.received}`,
                false,
              ),
            );
            return;
          }
        } else if (status === 200) {
          // The server ignored Range: start over.
          if (state.received > 0) {
            state.hash = createHash('sha256');
            state.received = 0;
          }
        } else if (status === 416 && state.received === o.size) {
          res.resume();
          settle();
          return;
        } else {
          const permanent = status >= 400 && status < 500 && status !== 408 && status !== 429;
          fail(
            new DownloadError(
              SIM_ERROR_CODES.downloadFailed,
              `HTTP ${status} for the firmware image`,
              permanent,
              status === 404,
            ),
          );
          return;
        }

        const startedAt = o.scheduler.now();
        let bytesThisRequest = 0;
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          if (state.received + chunk.length > o.size) {
            fail(
              new DownloadError(
                SIM_ERROR_CODES.checksumMismatch,
                `image is larger than the announced ${o.size} bytes`,
                true,
              ),
            );
            return;
          }
          state.hash.update(chunk);
          state.received += chunk.length;
          bytesThisRequest += chunk.length;
          o.onBytes(chunk.length, state.received);
          if (
            o.dropAtBytes != null &&
            !state.dropped &&
            state.received >= o.dropAtBytes &&
            state.received < o.size
          ) {
            state.dropped = true;
            req.destroy(new Error('connection dropped (simulated)'));
            return;
          }
          if (o.stallAtBytes != null && !state.stalled && state.received >= o.stallAtBytes) {
            state.stalled = true;
            holding = true;
            stall(o, req, res, (err) => settle(err, true));
            return;
          }
          // Throttle to the link speed: pause reading until the bytes so far were "due".
          const wait = startedAt + (bytesThisRequest / o.bytesPerSec) * 1000 - o.scheduler.now();
          if (wait > 2) {
            res.pause();
            o.scheduler.after(wait, () => {
              if (!settled) res.resume();
            });
          }
        });
        res.on('end', () => {
          if (state.received === o.size || !res.complete) {
            settle(res.complete ? undefined : new Error('response ended early'));
          } else {
            settle(
              new DownloadError(
                SIM_ERROR_CODES.checksumMismatch,
                `got ${state.received} bytes, expected ${o.size}`,
                true,
              ),
            );
          }
        });
        res.on('error', (err) => settle(err));
        res.on('close', () => settle(new Error('connection closed mid-body')));
      },
    );
    req.on('error', (err) => settle(err));
    req.setTimeout(o.idleTimeoutMs ?? 30_000, () => req.destroy(new Error('no data (idle timeout)')));
    abortWith(o.signal, req);
    req.end();
  });
}

/**
 * Requests in flight per stop signal, all destroyed by one abort listener. Passing the signal to
 * each request (http's `signal` option) adds and removes an EventTarget listener per download, and
 * each add walks the signal's whole listener list: with thousands of downloads on the fleet's one
 * signal that was 1.7 % of the simulator's CPU in the 10,000-site bench.
 */
const inFlight = new WeakMap<AbortSignal, Set<http.ClientRequest>>();

function abortWith(signal: AbortSignal, req: http.ClientRequest): void {
  const aborted = () => Object.assign(new Error('download aborted'), { name: 'AbortError', cause: signal.reason as unknown });
  if (signal.aborted) {
    req.destroy(aborted());
    return;
  }
  let requests = inFlight.get(signal);
  if (!requests) {
    const created = new Set<http.ClientRequest>();
    signal.addEventListener(
      'abort',
      () => {
        for (const r of created) r.destroy(aborted());
        created.clear();
      },
      { once: true },
    );
    inFlight.set(signal, created);
    requests = created;
  }
  const tracked = requests;
  tracked.add(req);
  req.once('close', () => tracked.delete(req));
}

/** Stops reading for a long time, the way a wedged download does, then gives up through `finish`. */
function stall(
  o: DownloadOptions,
  req: http.ClientRequest,
  res: http.IncomingMessage,
  finish: (err: unknown) => void,
): void {
  res.pause();
  req.setTimeout(0);
  const stallMs = o.stallMs ?? 3_600_000;
  o.scheduler.sleep(stallMs).then(
    () => {
      req.destroy();
      finish(
        new DownloadError(
          SIM_ERROR_CODES.downloadTimeout,
          `download stalled for ${Math.round(stallMs)} ms`,
          true,
        ),
      );
    },
    (err: unknown) => {
      req.destroy();
      finish(err);
    },
  );
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
