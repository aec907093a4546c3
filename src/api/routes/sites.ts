/**
 * `/api/sites`: registered sites with their device counts, and registration. A site's MQTT secret
 * appears only in the registration answer; the store keeps a hash.
 */
import { Router } from 'express';
import { MAX_AUDITED_IDS } from '../../audit/audit-log.js';
import { auditTarget } from '../audit-trail.js';
import { requireRole, operatorOf } from '../auth-middleware.js';
import { jsonBody } from '../body.js';
import type { ApiDeps } from '../deps.js';
import { registerSiteSchema, registerSitesBulkSchema, SITES_BODY_LIMIT_BYTES } from '../schemas.js';
import { parseInput } from '../validate.js';

/** One row of `GET /api/sites`. */
export interface SiteSummary {
  portalId: string;
  name: string | null;
  registeredAt: string;
  /** True when any of the site's devices is online. */
  online: boolean;
  devices: number;
}

/** Router for `/api/sites` (mount behind authenticate). */
export function sitesRouter(deps: ApiDeps): Router {
  const router = Router();

  router.get('/', async (_req, res) => {
    const [registered, devices] = await Promise.all([deps.sites.list(), deps.devices.list()]);
    const perSite = new Map<string, { devices: number; online: boolean }>();
    for (const d of devices) {
      const s = perSite.get(d.portalId) ?? { devices: 0, online: false };
      s.devices++;
      s.online ||= d.online;
      perSite.set(d.portalId, s);
    }
    const sites: SiteSummary[] = registered
      .map((r) => ({
        portalId: r.portalId,
        name: r.name,
        registeredAt: r.registeredAt,
        online: perSite.get(r.portalId)?.online ?? false,
        devices: perSite.get(r.portalId)?.devices ?? 0,
      }))
      .sort((a, b) => a.portalId.localeCompare(b.portalId));
    res.json({ sites });
  });

  // Registering an already registered site re-keys it: the old secret stops working.
  router.post('/', requireRole('operator'), ...jsonBody(SITES_BODY_LIMIT_BYTES), async (req, res) => {
    const by = operatorOf(res).name;
    res.setHeader('Cache-Control', 'no-store');
    const raw: unknown = req.body;
    if (typeof raw === 'object' && raw !== null && !Array.isArray(raw) && 'sites' in raw) {
      const { sites } = parseInput(registerSitesBulkSchema, raw, 'body');
      auditTarget(res, {
        portalIds: sites.slice(0, MAX_AUDITED_IDS).map((site) => site.portalId),
        sites: sites.length,
      });
      const created = await deps.sites.register(sites, by);
      deps.logger.info({ sites: created.length, by }, 'sites registered');
      res.status(201).json({ sites: created });
      return;
    }
    const site = parseInput(registerSiteSchema, raw, 'body');
    auditTarget(res, { portalIds: [site.portalId], sites: 1 });
    const [created] = await deps.sites.register([site], by);
    deps.logger.info({ portalId: site.portalId, by }, 'site registered');
    res.status(201).json(created);
  });

  return router;
}
