/**
 * What really happened on the simulated devices, independent of what any orchestrator believes:
 * every install request that reached a device, bytes downloaded, version changes, executions with
 * their final result, and how many devices were updating at once. Tests check the orchestrator
 * against this (e.g. "no execution was installed twice", "never more than maxConcurrent at once").
 */
import type { ErrorInfo } from '../src/protocol/index.js';
import type { FaultKind } from './fault-plan.js';

/** One `firmware.install` request as the device saw it. */
export interface InstallRequestRecord {
  executionId: string;
  jobId: string;
  /**
   * The RPC id the request came with. The same id twice is one request delivered twice (MQTT QoS 1
   * is at-least-once: a sender that lost the broker before its PUBACK sends it again on reconnect).
   */
  rpcId: string;
  /** Unix ms. */
  at: number;
  /** `accepted`: started an update; `duplicate`: already known, nothing restarted; `refused`: error answer. */
  outcome: 'accepted' | 'duplicate' | 'refused';
  /** The error code of a refusal. */
  code: string | null;
}

/** `lost`: the device never came back from its reboot (`neverReturns`). */
export type ExecutionResult = 'running' | 'succeeded' | 'failed' | 'lost';

export interface ExecutionTruth {
  deviceId: string;
  executionId: string;
  jobId: string;
  fault: FaultKind | null;
  fromVersion: string;
  targetVersion: string;
  acceptedAt: number;
  finishedAt: number | null;
  result: ExecutionResult;
  error: ErrorInfo | null;
  /** The version the device reported when the execution ended. */
  finalVersion: string | null;
}

export interface DeviceTruth {
  deviceId: string;
  installs: InstallRequestRecord[];
  bytesDownloaded: number;
  /** Every version the device ran, from the one it started with (empty while it never changed). Unix ms. */
  versions: { version: string; at: number }[];
  executions: ExecutionTruth[];
  degraded: boolean;
}

export class GroundTruth {
  private readonly byDevice = new Map<string, DeviceTruth>();
  private readonly running = new Set<ExecutionTruth>();
  private peak = 0;
  private accepted = 0;

  /**
   * @param currentVersions enumerates every device's current version (the fleet's live view).
   * @param startedAt when the fleet started, unix ms: the date of every device's first version.
   */
  constructor(
    private readonly currentVersions: () => Iterable<readonly [deviceId: string, version: string]>,
    readonly startedAt = Date.now(),
  ) {}

  /** The record of one device; undefined until its first event (install request, version change…). */
  device(deviceId: string): DeviceTruth | undefined {
    return this.byDevice.get(deviceId);
  }

  /** Records of every device that has had any event. */
  devices(): DeviceTruth[] {
    return [...this.byDevice.values()];
  }

  executions(): ExecutionTruth[] {
    return this.devices().flatMap((d) => d.executions);
  }

  execution(deviceId: string, executionId: string): ExecutionTruth | undefined {
    return this.byDevice.get(deviceId)?.executions.find((e) => e.executionId === executionId);
  }

  /** Install requests for this execution that reached the device: accepted, duplicate and refused. */
  installCount(deviceId: string, executionId: string): number {
    return this.byDevice.get(deviceId)?.installs.filter((i) => i.executionId === executionId).length ?? 0;
  }

  /**
   * Distinct install requests for this execution that reached the device (by RPC id): what the
   * orchestrator sent, with MQTT-level redeliveries of one request counted once.
   */
  requestCount(deviceId: string, executionId: string): number {
    const ids = new Set<string>();
    for (const i of this.byDevice.get(deviceId)?.installs ?? []) if (i.executionId === executionId) ids.add(i.rpcId);
    return ids.size;
  }

  /** Installs that actually started an update for this execution: must never exceed 1. */
  acceptedCount(deviceId: string, executionId: string): number {
    return (
      this.byDevice
        .get(deviceId)
        ?.installs.filter((i) => i.executionId === executionId && i.outcome === 'accepted').length ?? 0
    );
  }

  /**
   * Distinct install requests for this execution that reached the device after it had accepted one:
   * an install sent again to an update that had started. Must be 0. A request before any acceptance
   * (sent again because the answer to an earlier one was lost with a killed worker, say) starts nothing
   * the device did not start anyway: at most one is ever accepted ({@link acceptedCount}).
   */
  requestsAfterStart(deviceId: string, executionId: string): number {
    const installs = this.byDevice.get(deviceId)?.installs.filter((i) => i.executionId === executionId) ?? [];
    const first = installs.findIndex((i) => i.outcome === 'accepted');
    if (first < 0) return 0;
    const startedBy = installs[first].rpcId;
    return new Set(installs.slice(first + 1).filter((i) => i.rpcId !== startedBy).map((i) => i.rpcId)).size;
  }

  /** The largest number of install requests any one (device, execution) received. */
  maxInstallsPerExecution(): number {
    let max = 0;
    for (const d of this.byDevice.values()) {
      const counts = new Map<string, number>();
      for (const i of d.installs) counts.set(i.executionId, (counts.get(i.executionId) ?? 0) + 1);
      for (const n of counts.values()) max = Math.max(max, n);
    }
    return max;
  }

  /** Installs that started an update (duplicates and refusals not counted), fleet-wide or for one device. */
  installsAccepted(deviceId?: string): number {
    if (deviceId === undefined) return this.accepted;
    return this.byDevice.get(deviceId)?.installs.filter((i) => i.outcome === 'accepted').length ?? 0;
  }

  /** Device ids currently running `version` (display string). */
  devicesOnVersion(version: string): string[] {
    const ids: string[] = [];
    for (const [deviceId, v] of this.currentVersions()) if (v === version) ids.push(deviceId);
    return ids;
  }

  /**
   * Peak number of devices updating at once. A device counts from accepting the install until its
   * execution succeeds, fails, or the device vanishes for good (`lost`). A `downloadStall` keeps its
   * device updating for the whole stall, even after an orchestrator has timed it out.
   */
  maxConcurrentUpdates(): number {
    return this.peak;
  }

  updatingNow(): number {
    return this.running.size;
  }

  totalBytesDownloaded(): number {
    let sum = 0;
    for (const d of this.byDevice.values()) sum += d.bytesDownloaded;
    return sum;
  }

  // ---- recording, called by the simulator ----

  /** @internal */
  recordInstall(deviceId: string, record: InstallRequestRecord): void {
    this.ensure(deviceId).installs.push(record);
  }

  /** @internal */
  beginExecution(
    e: Omit<ExecutionTruth, 'finishedAt' | 'result' | 'error' | 'finalVersion'>,
  ): ExecutionTruth {
    const truth: ExecutionTruth = {
      ...e,
      finishedAt: null,
      result: 'running',
      error: null,
      finalVersion: null,
    };
    this.ensure(e.deviceId).executions.push(truth);
    this.running.add(truth);
    this.accepted++;
    this.peak = Math.max(this.peak, this.running.size);
    return truth;
  }

  /** @internal */
  finishExecution(
    truth: ExecutionTruth,
    result: Exclude<ExecutionResult, 'running'>,
    finalVersion: string,
    error: ErrorInfo | null = null,
  ): void {
    if (truth.result !== 'running') return;
    truth.result = result;
    truth.error = error;
    truth.finishedAt = Date.now();
    truth.finalVersion = finalVersion;
    this.running.delete(truth);
  }

  /** @internal */
  addBytes(deviceId: string, bytes: number): void {
    this.ensure(deviceId).bytesDownloaded += bytes;
  }

  /** @internal A version change; the first change also records the version the fleet started with. */
  recordVersion(deviceId: string, version: string, previous: string): void {
    const d = this.ensure(deviceId);
    if (d.versions.length === 0) d.versions.push({ version: previous, at: this.startedAt });
    d.versions.push({ version, at: Date.now() });
  }

  /** @internal */
  setDegraded(deviceId: string, degraded: boolean): void {
    this.ensure(deviceId).degraded = degraded;
  }

  private ensure(deviceId: string): DeviceTruth {
    let d = this.byDevice.get(deviceId);
    if (!d) {
      d = { deviceId, installs: [], bytesDownloaded: 0, versions: [], executions: [], degraded: false };
      this.byDevice.set(deviceId, d);
    }
    return d;
  }
}
