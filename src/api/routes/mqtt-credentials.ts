/**
 * `POST /api/mqtt-credentials`: short-lived, read-only MQTT credentials for the portal's WebSocket
 * connection. The broker verifies the token itself; the browser never sees a long-lived secret.
 * An optional body `{"jobs": [...]}` narrows the token to those jobs' topics (plus the fleet view);
 * without one it covers every job, which any role may read anyway.
 */
import { Router } from 'express';
import { browserClientIdPrefix } from '../../../broker/acl.js';
import { AppError } from '../../errors.js';
import { auditTarget } from '../audit-trail.js';
import { operatorOf } from '../auth-middleware.js';
import { optionalJsonBody } from '../body.js';
import type { ApiDeps } from '../deps.js';
import { mqttCredentialsBody } from '../schemas.js';
import { parseInput } from '../validate.js';

/** 100 job ids of at most 40 characters, with JSON around them, fit easily. */
const CREDENTIALS_BODY_LIMIT_BYTES = 16 * 1024;

/** Router for `/api/mqtt-credentials` (mount behind authenticate; any role). */
export function mqttCredentialsRouter(deps: ApiDeps): Router {
  const router = Router();
  router.post('/', ...optionalJsonBody(CREDENTIALS_BODY_LIMIT_BYTES), async (req, res) => {
    const body = parseInput(mqttCredentialsBody, req.body ?? {}, 'body');
    const jobs: '*' | string[] = body.jobs ? [...new Set(body.jobs)] : '*';
    auditTarget(res, { jobs });
    const url = deps.mqttWsUrl(req);
    if (url === null)
      throw new AppError(503, 'broker_unavailable', 'this instance has no MQTT broker for browsers');
    const op = operatorOf(res);
    const { token, expiresAt } = deps.tokens.browserToken(
      op.name,
      op.role,
      jobs,
      deps.config.browserTokenTtlMs,
    );
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      url,
      username: op.name,
      password: token,
      expiresAt: new Date(expiresAt).toISOString(),
      // The broker accepts only client ids `<clientIdPrefix><1-64 of [0-9A-Za-z_]>` with this token.
      clientIdPrefix: browserClientIdPrefix(op.name),
      jobs,
    });
  });
  return router;
}
