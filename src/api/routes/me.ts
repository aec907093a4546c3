/** `GET /api/me`: who the bearer token belongs to, so the portal can show it and hide what the role may not do. */
import { Router } from 'express';
import { operatorOf } from '../auth-middleware.js';

/** Router for `/api/me` (mount behind authenticate). */
export function meRouter(): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    const { name, role } = operatorOf(res);
    res.json({ name, role });
  });
  return router;
}
