/** Hash routes of the portal: `#/fleet`, `#/firmware`, `#/launch`, `#/jobs`, `#/jobs/<id>`. */
import { isJobId } from '../../src/protocol/index.js';

/** A parsed route. */
export type Route =
  | { name: 'fleet' }
  | { name: 'firmware' }
  | { name: 'launch' }
  | { name: 'jobs' }
  | { name: 'job'; id: string }
  | { name: 'not-found'; path: string };

/** Parses `location.hash`; an empty hash is the fleet view. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/\/+$/, '') || '/fleet';
  if (path === '/' || path === '/fleet') return { name: 'fleet' };
  if (path === '/firmware') return { name: 'firmware' };
  if (path === '/launch') return { name: 'launch' };
  if (path === '/jobs') return { name: 'jobs' };
  const job = /^\/jobs\/([^/]+)$/.exec(path);
  if (job && isJobId(job[1])) return { name: 'job', id: job[1] };
  return { name: 'not-found', path };
}

/** The hash of a job's page. */
export function jobHref(jobId: string): string {
  return `#/jobs/${jobId}`;
}
