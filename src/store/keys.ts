/**
 * Every Redis key fleetflash writes, under one prefix (config.queuePrefix), so several deployments
 * and parallel tests share one Redis without touching each other.
 */
export interface Keys {
  readonly prefix: string;
  job(jobId: string): string;
  jobExecutions(jobId: string): string;
  jobEvents(jobId: string): string;
  jobs(): string;
  deviceLock(deviceId: string): string;
  devices(): string;
  siteDevices(portalId: string): string;
  /** Executions waiting for this site to be free (set of `<retry zset key>|<jobId>|<deviceId>`; see lua.ts). */
  siteWaiters(portalId: string): string;
  deviceHistory(deviceId: string): string;
  sites(): string;
  firmware(): string;
  /** Jobs that launched with this image and may still use it (zset: job id → reservation time). */
  firmwareJobs(firmwareId: string): string;
  /** The job's eligible device ids in release order (list, fixed at launch). */
  jobOrder(jobId: string): string;
  /** Device ids of the canary wave (set). */
  jobCanary(jobId: string): string;
  /** Device ids released and not yet finished (set). */
  jobInFlight(jobId: string): string;
  /** Device ids re-queued after a transient failure (zset: id → due time). */
  jobRetries(jobId: string): string;
  /** Release log of the last minute, for perMinute (zset: `<deviceId>|<retries>` → time). */
  jobReleaseLog(jobId: string): string;
  /** Releases not yet confirmed in the queue (zset: `<deviceId>|<retries>` → time). */
  jobUnconfirmed(jobId: string): string;
  /** The short lease of the process releasing this job's executions. */
  jobLease(jobId: string): string;
  /** Jobs the rollout controllers still look after (set). */
  rollouts(): string;
  /** Pub/sub channel: a job id whenever its rollout may move (created, execution finished or re-queued). */
  rolloutChannel(): string;
  /** The audit trail (zset: entry JSON → entry id). */
  audit(): string;
  /** Counter handing out audit entry ids. */
  auditSeq(): string;
  /** Finished jobs' retained topics are cleared up to here: every job created at or before this time (ms) is done with. */
  retainedExpiryCursor(): string;
  /** The short lease of the api process clearing them. */
  retainedExpiryLease(): string;
  /** The short lease of the api process deleting finished jobs past JOB_RETENTION_MS. */
  jobRetentionLease(): string;
  /** A browser an external broker authenticated through the auth hook, by client id (JSON; expires with its token). */
  brokerAuthBrowser(clientId: string): string;
}

export function createKeys(prefix: string): Keys {
  const p = `${prefix}:ff`;
  return {
    prefix,
    job: (id) => `${p}:job:${id}`,
    jobExecutions: (id) => `${p}:job:${id}:executions`,
    jobEvents: (id) => `${p}:job:${id}:events`,
    jobs: () => `${p}:jobs`,
    deviceLock: (id) => `${p}:lock:device:${id}`,
    devices: () => `${p}:devices`,
    siteDevices: (portalId) => `${p}:site:${portalId}:devices`,
    siteWaiters: (portalId) => `${p}:site:${portalId}:waiters`,
    deviceHistory: (id) => `${p}:device:${id}:history`,
    sites: () => `${p}:sites`,
    firmware: () => `${p}:firmware`,
    firmwareJobs: (id) => `${p}:firmware:${id}:jobs`,
    jobOrder: (id) => `${p}:job:${id}:order`,
    jobCanary: (id) => `${p}:job:${id}:canary`,
    jobInFlight: (id) => `${p}:job:${id}:inflight`,
    jobRetries: (id) => `${p}:job:${id}:retries`,
    jobReleaseLog: (id) => `${p}:job:${id}:releases`,
    jobUnconfirmed: (id) => `${p}:job:${id}:unconfirmed`,
    jobLease: (id) => `${p}:job:${id}:lease`,
    rollouts: () => `${p}:rollouts`,
    rolloutChannel: () => `${p}:rollout`,
    audit: () => `${p}:audit`,
    auditSeq: () => `${p}:audit:seq`,
    retainedExpiryCursor: () => `${p}:retained-expiry:cursor`,
    retainedExpiryLease: () => `${p}:retained-expiry:lease`,
    jobRetentionLease: () => `${p}:job-retention:lease`,
    brokerAuthBrowser: (clientId) => `${p}:broker-auth:browser:${clientId}`,
  };
}
