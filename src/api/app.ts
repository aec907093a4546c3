/**
 * The HTTP API: REST under `/api`, health probes, the OpenAPI document and the static portal in an
 * Express 5 application, and the firmware downloads under `/firmware` in front of it. Order matters
 * in the app: request log first, public routes, then authentication for everything else under `/api`
 * and the audit trail right behind it, then extensions, then the JSON 404 and the error handler last.
 */
import type { RequestListener } from 'node:http';
import express, { type Express } from 'express';
import { auditTrail } from './audit-trail.js';
import { authenticate, requireRole } from './auth-middleware.js';
import { FailedAuthLimiter } from './auth-rate-limit.js';
import type { ApiDeps, ApiGuards } from './deps.js';
import { errorHandler, notFoundHandler } from './error-handler.js';
import { firmwareDownloads } from './firmware-download.js';
import { buildOpenApi } from './openapi.js';
import { requestLog } from './request-log.js';
import { auditRouter } from './routes/audit.js';
import { devicesRouter } from './routes/devices.js';
import { firmwareRouter } from './routes/firmware.js';
import { healthRouter } from './routes/health.js';
import { jobsRouter } from './routes/jobs.js';
import { meRouter } from './routes/me.js';
import { mqttCredentialsRouter } from './routes/mqtt-credentials.js';
import { sitesRouter } from './routes/sites.js';

export type { AbortResult, ApiDeps, ApiGuards } from './deps.js';

/**
 * The HTTP server's request listener: firmware downloads straight to their plain handler
 * (firmware-download.ts), everything else to the Express app.
 */
export function createRequestListener(deps: ApiDeps): RequestListener {
  const app = createApp(deps);
  const downloads = firmwareDownloads({ tokens: deps.tokens, firmware: deps.firmware, logger: deps.logger });
  return (req, res) => {
    if (!downloads(req, res)) app(req, res);
  };
}

/**
 * Builds the app (everything but the firmware downloads); it holds no timers or connections of its
 * own, so closing the HTTP server is all the teardown it needs.
 */
export function createApp(deps: ApiDeps): Express {
  const log = deps.logger;
  const app = express();
  app.disable('x-powered-by');
  // Plain key=value queries only: the extended (qs) parser turns `a[b]=1` into objects nobody validates for.
  app.set('query parser', 'simple');

  app.use(requestLog(log));
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });

  app.use(healthRouter({ readiness: deps.readiness, logger: log }));
  const openApi = JSON.stringify(buildOpenApi({ maxDevicesPerJob: deps.config.maxDevicesPerJob }));
  app.get('/api/openapi.json', (_req, res) => {
    res.type('application/json').send(openApi);
  });

  const guards: ApiGuards = {
    authenticate: authenticate(deps.operators, new FailedAuthLimiter()),
    requireRole,
  };
  const api = express.Router();
  api.use(guards.authenticate);
  api.use(auditTrail(deps.audit, log));
  api.use('/me', meRouter());
  api.use('/audit', auditRouter(deps));
  api.use('/jobs', jobsRouter({ ...deps, logger: log }));
  api.use('/devices', devicesRouter({ ...deps, logger: log }));
  api.use('/sites', sitesRouter({ ...deps, logger: log }));
  api.use('/firmware', firmwareRouter({ ...deps, logger: log }));
  api.use('/mqtt-credentials', mqttCredentialsRouter({ ...deps, logger: log }));
  app.use('/api', api);

  deps.mount?.(app, guards);
  if (deps.webDir) app.use(express.static(deps.webDir, { index: 'index.html', fallthrough: true }));

  app.use(notFoundHandler());
  app.use(errorHandler(log));
  return app;
}
