/**
 * Launching a job: resolve its devices (a list, or a filter over the inventory), check each against
 * the image (product fits, version newer), and write the job, every execution and its rollout plan
 * in one transaction. Devices that fail a check get a `rejected` execution with the reason (and a
 * history entry); the request fails (422) only when no device is left. Nothing is enqueued here: the
 * rollout controller releases executions within the job's limits, woken by a message on the
 * rollout channel. So a launch of 10,000 devices answers at once.
 */
import type { Logger } from 'pino';
import { BadRequestError, NotFoundError, UnprocessableError } from '../errors.js';
import {
  canarySizeOf,
  DEFAULT_RETRY_POLICY,
  formatExecutionId,
  formatProductId,
  MAX_RECORDED_SITES,
  newJobId,
  type AbortRule,
  type DeviceRecord,
  type ErrorInfo,
  type ExecutionRecord,
  type ExecutionTimeouts,
  type FirmwareRecord,
  type JobRecord,
  type JobSchedule,
  type JobTarget,
  type RetryPolicy,
  type RolloutLimits,
  type TargetFilter,
} from '../protocol/index.js';
import type { Clock } from '../rollout/clock.js';
import type { RolloutStore } from '../rollout/rollout-store.js';
import { HISTORY_LIMIT, type DeviceStore } from '../store/device-store.js';
import { historyEntryOf, type JobSpec, type JobStore } from '../store/job-store.js';
import type { Keys } from '../store/keys.js';
import type { StatusPublisher } from '../status/status-publisher.js';
import type { FirmwareUsage } from './firmware-usage.js';
import { launchRejection } from './launch-checks.js';
import { resolveDeviceList, resolveFilter } from './target-resolver.js';

/** The body of `POST /api/jobs`, validated (exactly one of `devices` and `filter`). */
export interface LaunchRequest {
  firmwareId: string;
  devices?: string[];
  filter?: TargetFilter;
  timeouts?: Partial<ExecutionTimeouts>;
  rollout?: RolloutLimits;
  abort?: AbortRule;
  schedule?: JobSchedule;
  retry?: Partial<RetryPolicy>;
  allowDowngrade?: boolean;
  allowSameVersion?: boolean;
}

export interface LaunchDeps {
  jobs: JobStore;
  devices: DeviceStore;
  rollout: RolloutStore;
  usage: FirmwareUsage;
  keys: Keys;
  publisher: StatusPublisher | null;
  defaultTimeouts: ExecutionTimeouts;
  maxDevicesPerJob: number;
  clock: Clock;
  logger: Logger;
}

/** Rejections listed in a 422's details at most. */
const MAX_LISTED = 100;

export class JobLauncher {
  constructor(private readonly deps: LaunchDeps) {}

  async launch(req: LaunchRequest, createdBy: string): Promise<JobRecord> {
    const { devices, usage, logger } = this.deps;
    if (req.devices && new Set(req.devices).size !== req.devices.length) {
      throw new BadRequestError('devices must not repeat', undefined, 'duplicate_devices');
    }
    const id = newJobId(this.deps.clock.now());
    // Reserve first, then read: a delete of the image racing this launch either waits for the job or wins before it.
    const image = await usage.reserve(req.firmwareId, id, this.deps.clock.now());
    if (!image) throw new NotFoundError('firmware', req.firmwareId);
    try {
      const targeted = req.devices
        ? await resolveDeviceList(devices, req.devices)
        : await resolveFilter(devices, req.filter ?? {}, image, this.deps.maxDevicesPerJob);
      const target: JobTarget = req.devices
        ? { kind: 'devices', count: targeted.length }
        : { kind: 'filter', filter: recordedFilter(req.filter ?? {}), matched: targeted.length };
      const job = await this.create(id, req, image, targeted, target, createdBy);
      await this.deps.rollout
        .notify(id)
        .catch((err: Error) =>
          logger.warn({ err, jobId: id }, 'rollout notify failed; the sweep releases it'),
        );
      logger.info(
        { jobId: id, devices: job.total, eligible: job.release.eligible, firmwareId: image.id, createdBy },
        'job launched',
      );
      return job;
    } catch (err) {
      await usage.release(req.firmwareId, id).catch(() => undefined);
      throw err;
    }
  }

  private async create(
    id: string,
    req: LaunchRequest,
    image: FirmwareRecord,
    targeted: DeviceRecord[],
    target: JobTarget,
    createdBy: string,
  ): Promise<JobRecord> {
    const { jobs, publisher } = this.deps;
    const versionPolicy = {
      allowDowngrade: req.allowDowngrade ?? false,
      allowSameVersion: req.allowSameVersion ?? false,
    };
    const rejections = new Map<string, ErrorInfo>();
    for (const d of targeted) {
      const r = launchRejection(d, image, versionPolicy);
      if (r) rejections.set(d.deviceId, r);
    }
    if (rejections.size === targeted.length) throw noEligibleDevice(image, targeted, rejections);

    const now = new Date(this.deps.clock.now()).toISOString();
    const order = targeted.filter((d) => !rejections.has(d.deviceId)).map((d) => d.deviceId);
    const rollout: RolloutLimits = req.rollout ?? {};
    const spec: JobSpec = {
      id,
      firmwareId: image.id,
      firmwareVersion: image.version,
      firmwareName: image.name,
      timeouts: { ...this.deps.defaultTimeouts, ...req.timeouts },
      createdBy,
      createdAt: now,
      target,
      rollout,
      abort: req.abort ?? null,
      schedule: req.schedule ?? null,
      retry: { ...DEFAULT_RETRY_POLICY, ...req.retry },
      ...versionPolicy,
    };
    const executions = targeted.map((d) => execution(id, d, image, now, rejections.get(d.deviceId) ?? null));
    const init = this.deps.rollout.initFor(id, {
      order,
      canarySize: rollout.waves ? canarySizeOf(rollout.waves.canary, order.length) : 0,
      launchRejected: rejections.size,
    });
    for (const e of rejections.values())
      init.fields[`e:${e.code}`] = String(Number(init.fields[`e:${e.code}`] ?? 0) + 1);
    const planWrites = init.extend;
    const keys = this.deps.keys;
    init.extend = (multi) => {
      planWrites?.(multi);
      for (const e of executions) {
        if (e.state !== 'rejected') continue;
        // Every device keeps its update history; a launch-time rejection is part of it.
        multi
          .lpush(keys.deviceHistory(e.deviceId), JSON.stringify(historyEntryOf(e)))
          .ltrim(keys.deviceHistory(e.deviceId), 0, HISTORY_LIMIT - 1);
      }
    };
    const summary =
      `${image.name} ${image.version} on ${executions.length} device(s)` +
      (rejections.size ? `, ${rejections.size} rejected at launch` : '');
    const job = await jobs.create(
      spec,
      executions,
      { deviceId: null, level: 'info', message: `job created by ${createdBy}: ${summary}` },
      init,
    );
    if (publisher) {
      publisher.job(job);
      for (const e of executions) publisher.execution(e);
    }
    return job;
  }
}

/** The filter as the job records it: a long site list is cut (the executions name every device anyway). */
function recordedFilter(filter: TargetFilter): TargetFilter & { sitesTotal?: number } {
  if (!filter.sites || filter.sites.length <= MAX_RECORDED_SITES) return filter;
  return { ...filter, sites: filter.sites.slice(0, MAX_RECORDED_SITES), sitesTotal: filter.sites.length };
}

function execution(
  jobId: string,
  d: DeviceRecord,
  image: FirmwareRecord,
  now: string,
  rejection: ErrorInfo | null,
): ExecutionRecord {
  return {
    executionId: formatExecutionId(jobId, d.deviceId),
    jobId,
    deviceId: d.deviceId,
    state: rejection ? 'rejected' : 'queued',
    phase: null,
    progress: 0,
    fromVersion: d.version,
    toVersion: image.version,
    error: rejection,
    attempt: 0,
    seq: 1,
    installSentAt: null,
    installAccepted: false,
    phaseStartedAt: null,
    createdAt: now,
    startedAt: null,
    updatedAt: now,
    finishedAt: rejection ? now : null,
    retries: 0,
    retryAt: null,
  };
}

/** 422: `incompatible_product` when no device fits the image, else `not_newer`. */
function noEligibleDevice(
  image: FirmwareRecord,
  targeted: DeviceRecord[],
  rejections: Map<string, ErrorInfo>,
): UnprocessableError {
  const listed = targeted.slice(0, MAX_LISTED);
  const more = targeted.length > MAX_LISTED ? { more: targeted.length - MAX_LISTED } : {};
  if (targeted.every((d) => rejections.get(d.deviceId)?.code === 'incompatible')) {
    return new UnprocessableError(
      'incompatible_product',
      `firmware ${image.name} ${image.version} fits products ${image.productIds.map(formatProductId).join(', ')}; none of the ${targeted.length} device(s) is one`,
      {
        incompatible: listed.map((d) => ({
          deviceId: d.deviceId,
          productId: d.productId === null ? null : formatProductId(d.productId),
        })),
        ...more,
      },
    );
  }
  return new UnprocessableError(
    'not_newer',
    `no device would be updated: each is another product or already runs ${image.version} or newer (see allowSameVersion, allowDowngrade)`,
    {
      rejected: listed.map((d) => ({
        deviceId: d.deviceId,
        version: d.version,
        ...rejections.get(d.deviceId),
      })),
      ...more,
    },
  );
}
