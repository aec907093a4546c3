/**
 * `GET /api/audit`: the audit trail, newest first, paged with `before=<id>`.
 *
 * Operators only. The trail names every operator, the addresses they work from and when, which is
 * security-relevant metadata a viewer (someone who only watches updates) has no need for; the people
 * who can launch and abort are the ones accountable to each other through it.
 */
import { Router } from 'express';
import { requireRole } from '../auth-middleware.js';
import type { ApiDeps } from '../deps.js';
import { auditQuery, DEFAULT_AUDIT_PAGE } from '../schemas.js';
import { parseInput } from '../validate.js';

/** Router for `/api/audit` (mount behind authenticate). */
export function auditRouter(deps: Pick<ApiDeps, 'audit'>): Router {
  const router = Router();
  router.get('/', requireRole('operator'), async (req, res) => {
    const q = parseInput(auditQuery, req.query, 'query');
    const limit = q.limit ?? DEFAULT_AUDIT_PAGE;
    // Entries of calls this instance just answered are written after their answer: wait for them.
    await deps.audit.settled();
    const entries = await deps.audit.list(limit, q.before);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ entries, nextBefore: entries.length === limit ? entries[entries.length - 1].id : null });
  });
  return router;
}
