/**
 * The BullMQ dashboard (bull-board) at `/admin/queues`, for operators only, read-only: executions are
 * steered through the API (abort, cancel), never by moving queue jobs by hand, which would bypass the
 * execution records and the point-of-no-return rule.
 *
 * The portal links here in a new tab, where no bearer header can be attached: so this route also takes
 * HTTP Basic credentials with the operator token as the password (any user name), and its 401 asks the
 * browser for them (RFC 7617). The token is checked by the API's own authentication and limiter.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import { Router, type Express, type RequestHandler } from 'express';
import type { ApiGuards } from '../api/deps.js';
import { AppError } from '../errors.js';

export const QUEUE_DASHBOARD_PATH = '/admin/queues';

const BASIC_RE = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i;
const CHALLENGE = 'Basic realm="fleetflash queues", charset="UTF-8"';

/** `Authorization: Basic base64(user:token)` becomes `Bearer token` for the API's authentication. */
export const basicAsBearer: RequestHandler = (req, _res, next) => {
  const m = BASIC_RE.exec(req.get('authorization') ?? '');
  if (m) {
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    req.headers.authorization = `Bearer ${colon < 0 ? decoded : decoded.slice(colon + 1)}`;
  }
  next();
};

/** Runs the API's authentication; a 401 from it challenges for Basic credentials, so browsers prompt. */
function authenticateOrChallenge(authenticate: RequestHandler): RequestHandler {
  return (req, res, next) => {
    try {
      authenticate(req, res, next);
    } catch (err) {
      if (err instanceof AppError && err.status === 401) res.setHeader('WWW-Authenticate', CHALLENGE);
      throw err;
    }
  };
}

/** Mounts the dashboard over `queues` at {@link QUEUE_DASHBOARD_PATH}. */
export function mountQueueDashboard(app: Express, guards: ApiGuards, queues: readonly Queue[]): void {
  const board = new ExpressAdapter();
  board.setBasePath(QUEUE_DASHBOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: true, allowRetries: false })),
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'fleetflash' } },
  });
  const router = Router();
  router.use((req, res, next) => {
    // Read-only in depth: bull-board refuses actions on read-only queues; nothing but reads gets this far.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      res.status(405).json({ error: { code: 'method_not_allowed', message: 'the queue dashboard is read-only' } });
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  router.use(basicAsBearer, authenticateOrChallenge(guards.authenticate), guards.requireRole('operator'));
  router.use(board.getRouter() as RequestHandler);
  app.use(QUEUE_DASHBOARD_PATH, router);
}
