/**
 * `/api/jobs`: launch, list, inspect, read the log backlog, abort.
 * Launching goes through JobLauncher only, which writes the whole job or nothing.
 */
import { Router } from 'express';
import { NotFoundError } from '../../errors.js';
import { auditTarget } from '../audit-trail.js';
import { requireRole, operatorOf } from '../auth-middleware.js';
import { jsonBody } from '../body.js';
import type { ApiDeps } from '../deps.js';
import {
  JSON_BODY_LIMIT_BYTES,
  jobEventsQuery,
  jobDeviceParams,
  jobIdParam,
  jobListQuery,
  launchJobSchema,
  MAX_EVENTS_PER_PAGE,
} from '../schemas.js';
import { parseInput, parseParams } from '../validate.js';

const DEFAULT_JOBS_PAGE = 100;

/** Router for `/api/jobs` (mount behind authenticate). */
export function jobsRouter(deps: ApiDeps): Router {
  const router = Router();
  const launchSchema = launchJobSchema({ maxDevicesPerJob: deps.config.maxDevicesPerJob });
  const jobId = (params: unknown): string =>
    parseParams(
      jobIdParam,
      params,
      () => new NotFoundError('job', String((params as { id?: unknown }).id).slice(0, 40)),
    ).id;

  router.post('/', requireRole('operator'), ...jsonBody(JSON_BODY_LIMIT_BYTES), async (req, res) => {
    const body = parseInput(launchSchema, req.body, 'body');
    auditTarget(res, { firmwareId: body.firmwareId, ...(body.devices ? { devices: body.devices.length } : {}) });
    const job = await deps.launcher.launch(body, operatorOf(res).name);
    auditTarget(res, { jobId: job.id });
    res.status(202).location(`/api/jobs/${job.id}`).json({ job });
  });

  router.get('/', async (req, res) => {
    const q = parseInput(jobListQuery, req.query, 'query');
    res.json({ jobs: await deps.jobs.list(q.limit ?? DEFAULT_JOBS_PAGE, q.offset ?? 0) });
  });

  router.get('/:id', async (req, res) => {
    const id = jobId(req.params);
    const found = await deps.jobs.withExecutions(id);
    if (!found) throw new NotFoundError('job', id);
    res.json(found);
  });

  router.get('/:id/events', async (req, res) => {
    const id = jobId(req.params);
    const q = parseInput(jobEventsQuery, req.query, 'query');
    const after = q.after ?? 0;
    const [job, events] = await Promise.all([
      deps.jobs.get(id),
      deps.jobs.events(id, after, q.limit ?? MAX_EVENTS_PER_PAGE),
    ]);
    if (!job) throw new NotFoundError('job', id);
    // nextAfter is what the reader passes next time (or the seq from which it continues on the
    // events topic); with no new lines it stays where it was.
    res.json({ events, nextAfter: events.length ? events[events.length - 1].seq : after });
  });

  router.post('/:id/abort', requireRole('operator'), async (req, res) => {
    const id = jobId(req.params);
    res.json(await deps.abort(id, operatorOf(res).name));
  });

  router.post('/:id/devices/:deviceId/cancel', requireRole('operator'), async (req, res) => {
    const p = parseParams(jobDeviceParams, req.params, () => new NotFoundError('execution', `${String(req.params.id).slice(0, 40)}`));
    res.json({ execution: await deps.cancelExecution(p.id, p.deviceId, operatorOf(res).name) });
  });

  return router;
}
