/** Launching jobs and reading their outcome through the API, and reading the simulator's ground truth per job. */
import type { Fleet } from '../../devices-sim/index.js';
import { isTerminalExecutionState, type ExecutionRecord, type JobRecord } from '../../src/protocol/index.js';
import { waitFor, type Harness } from './service-harness.js';

export interface JobView {
  job: JobRecord;
  executions: ExecutionRecord[];
}

/** `POST /api/jobs`; expects 202 and returns the job. */
export async function launchJob(h: Harness, body: Record<string, unknown>): Promise<JobRecord> {
  const res = await h.api('/api/jobs', { method: 'POST', json: body });
  const json = (await res.json()) as { job: JobRecord; error?: unknown };
  if (res.status !== 202) throw new Error(`launch answered ${res.status}: ${JSON.stringify(json)}`);
  return json.job;
}

export async function readJob(h: Harness, jobId: string): Promise<JobView> {
  return (await (await h.api(`/api/jobs/${jobId}`)).json()) as JobView;
}

/** Waits until the job is completed or aborted and every execution of it has ended (an abort cancels them one by one). */
export function jobFinished(h: Harness, jobId: string, timeoutMs = 60_000): Promise<JobView> {
  return waitFor(
    async () => {
      const v = await readJob(h, jobId);
      const ended = v.executions.every((e) => isTerminalExecutionState(e.state));
      return (v.job.state === 'completed' || v.job.state === 'aborted') && v.job.finishedAt !== null && ended
        ? v
        : null;
    },
    timeoutMs,
    `job ${jobId} to finish`,
  );
}

/** Waits until `check` holds for the job as the API serves it. */
export function jobWhere(
  h: Harness,
  jobId: string,
  check: (v: JobView) => boolean,
  what: string,
  timeoutMs = 40_000,
): Promise<JobView> {
  return waitFor(
    async () => {
      const v = await readJob(h, jobId);
      return check(v) ? v : null;
    },
    timeoutMs,
    what,
  );
}

/** Ground truth: the devices that accepted an install of this job, with when. */
export function installsOf(
  fleets: Fleet | Fleet[],
  jobId: string,
): { deviceId: string; acceptedAt: number; finishedAt: number | null }[] {
  return (Array.isArray(fleets) ? fleets : [fleets])
    .flatMap((f) => f.truth.executions())
    .filter((e) => e.jobId === jobId)
    .map((e) => ({ deviceId: e.deviceId, acceptedAt: e.acceptedAt, finishedAt: e.finishedAt }));
}

/** Ground truth: every install request of this job that reached a device (accepted, duplicate, refused). */
export function installRequestsOf(fleets: Fleet | Fleet[], jobId: string): number {
  return (Array.isArray(fleets) ? fleets : [fleets])
    .flatMap((f) => f.truth.devices())
    .reduce((n, d) => n + d.installs.filter((i) => i.jobId === jobId).length, 0);
}

export function solarChargers(f: Fleet): string[] {
  return f
    .devices()
    .filter((d) => d.service === 'solarcharger')
    .map((d) => d.deviceId);
}
