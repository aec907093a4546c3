/**
 * `/healthz` (the process answers) and `/readyz` (its dependencies answer), for load balancers and
 * orchestrators; no authentication and no details beyond named booleans.
 */
import { Router } from 'express';
import type { ApiDeps } from '../deps.js';

/** Router for `/healthz` and `/readyz`; mount at `/`. */
export function healthRouter(deps: Pick<ApiDeps, 'readiness' | 'logger'>): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ ok: true });
  });
  router.get('/readyz', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    let result: { ok: boolean; checks: Record<string, boolean> };
    try {
      result = await deps.readiness();
    } catch (err) {
      // A readiness probe that throws means "not ready", not "the API is broken".
      deps.logger.warn({ err }, 'readiness check failed');
      result = { ok: false, checks: {} };
    }
    res.status(result.ok ? 200 : 503).json({ ok: result.ok, checks: result.checks });
  });
  return router;
}
