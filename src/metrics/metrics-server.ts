/**
 * The small HTTP listener of `METRICS_PORT`: `/metrics`, `/healthz` and `/readyz` for processes
 * without the api role (worker-only processes in particular), so an orchestrator can probe them and
 * Prometheus can scrape them. No token: bind it to an internal network only.
 */
import http from 'node:http';
import type { Logger } from 'pino';
import { listenHttp, type HttpListener } from '../net/http-listener.js';
import { renderMetrics, type Registry } from './metrics-registry.js';

export interface Readiness {
  ok: boolean;
  checks: Record<string, boolean>;
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * `/healthz` (the process answers) and `/readyz` (its dependencies answer), with `more` for other
 * paths; anything else is a 404, a method other than GET or HEAD a 405.
 */
export function probeListener(
  readiness: () => Promise<Readiness>,
  logger: Logger,
  more: (path: string, res: http.ServerResponse) => boolean = () => false,
): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    if (path === '/healthz') return send(res, 200, 'application/json', '{"ok":true}');
    if (path === '/readyz') {
      readiness().then(
        (r) => send(res, r.ok ? 200 : 503, 'application/json', JSON.stringify(r)),
        (err: unknown) => {
          logger.warn({ err }, 'readiness check failed');
          send(res, 503, 'application/json', '{"ok":false,"checks":{}}');
        },
      );
      return;
    }
    if (!more(path, res)) send(res, 404, 'text/plain', 'not found\n');
  };
}

/** Listens on `port` (0: any free one) at `host`. */
export async function startMetricsServer(options: {
  registry: Registry;
  readiness: () => Promise<Readiness>;
  port: number;
  host: string;
  logger: Logger;
}): Promise<HttpListener> {
  const { registry, logger } = options;
  const server = http.createServer(
    probeListener(options.readiness, logger, (path, res) => {
      if (path !== '/metrics') return false;
      renderMetrics(registry).then(
        (m) => send(res, 200, m.contentType, m.body),
        (err: unknown) => {
          logger.error({ err }, 'metrics collection failed');
          send(res, 500, 'text/plain', 'metrics collection failed\n');
        },
      );
      return true;
    }),
  );
  return listenHttp(server, options.port, options.host);
}
