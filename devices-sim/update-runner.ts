/**
 * One accepted firmware update on one simulated device, from download to the device coming back:
 * downloading → verifying → installing (VE.Bus: backup → flash → restore) → rebooting.
 * Progress events go to the install's RPC out topic; the GX also shows its own update on
 * `platform/0/Firmware/State` and `/Progress`. Faults planned at admission shape the flow.
 */
import type { InstallParams } from '../src/protocol/index.js';
import { download, DownloadError } from './downloader.js';
import { FIRMWARE_STATE } from './device-paths.js';
import type { FleetContext } from './fleet-context.js';
import type { ExecutionTruth } from './ground-truth.js';
import {
  overallProgress,
  PHASE_BANDS,
  PROGRESS_STEP,
  ProgressThrottle,
  type DevicePhase,
} from './progress.js';
import { SchedulerStoppedError } from './scheduler.js';
import type { DeviceExecution, SimDevice } from './sim-device.js';

/** Smallest real pause between download retries, and how many fruitless attempts before giving up (about a minute in all). */
const DOWNLOAD_RETRY_FLOOR_MS = 250;
const DOWNLOAD_MAX_ATTEMPTS = 8;
import { SIM_ERROR_CODES } from './sim-errors.js';

/** What the update needs from its site. */
export interface UpdateHost {
  readonly ctx: FleetContext;
  sendRpc(rpcId: string, body: unknown): void;
  /** Publishes these paths of the device if the site is alive. */
  notify(device: SimDevice, ...paths: string[]): void;
  /** The product leaves the bus (empty payloads on its topics). */
  serviceLeft(device: SimDevice): void;
  /** The product is back on the bus (all its topics). */
  serviceReturned(device: SimDevice): void;
  /**
   * Reboots the GX: the site goes offline; after `downMs` `whileDown` runs and the site reconnects.
   * Resolves false (and never reconnects) when `comesBack` is false.
   */
  rebootPlatform(downMs: number, comesBack: boolean, whileDown: () => void): Promise<boolean>;
  /** The updates running on this site (each adds and removes itself). */
  readonly updates: Set<UpdateRunner>;
}

/** The update was ended from outside while it waited (the GX rebooted under it): its flow stops. */
class UpdateEndedError extends Error {}

export class UpdateRunner {
  private readonly throttle = new ProgressThrottle();
  private gxProgressStep = -1;
  /** Succeeded, failed or lost: nothing more happens. */
  private ended = false;

  constructor(
    private readonly host: UpdateHost,
    private readonly device: SimDevice,
    private readonly exec: DeviceExecution,
    private readonly params: InstallParams,
    private readonly truth: ExecutionTruth,
  ) {}

  /** Runs the whole update; never rejects. */
  async run(): Promise<void> {
    this.host.updates.add(this);
    try {
      await this.flow();
    } catch (err) {
      // Fleet stop: the process "loses power", nothing more is reported.
      if (this.host.ctx.signal.aborted || err instanceof SchedulerStoppedError || err instanceof UpdateEndedError) return;
      this.host.ctx.logger.error(
        { deviceId: this.device.deviceId, executionId: this.exec.executionId, err },
        'simulated update crashed',
      );
      this.fail('internal', err instanceof Error ? err.message : String(err));
    } finally {
      this.host.updates.delete(this);
    }
  }

  /**
   * The site's GX is rebooting. It downloads and flashes its products' firmware itself, so a product
   * update not yet rebooting into its new firmware dies with it: failed `interrupted`, the product
   * keeps its old firmware. The GX's own update, and a product already rebooting, go on.
   */
  gxRebooting(): void {
    if (this.ended || this.device.service === 'platform' || this.exec.phase === 'rebooting') return;
    this.fail(SIM_ERROR_CODES.interrupted, 'the GX rebooted during the update; the device keeps its old firmware');
  }

  private get ctx(): FleetContext {
    return this.host.ctx;
  }

  private async flow(): Promise<void> {
    const { device, exec, params, ctx } = this;
    const fault = exec.plan.fault;
    const d = ctx.durations;
    this.progress('downloading', 0);
    if (device.service === 'platform') this.setGx(FIRMWARE_STATE.downloadingAndInstalling, 0);

    let digest: string;
    try {
      const result = await download({
        url: params.url,
        size: params.size,
        bytesPerSec: ctx.time.bytesPerSec(fault === 'slowLink' ? d.slowLinkBytesPerSec : d.linkBytesPerSec) / exec.plan.pace,
        scheduler: ctx.scheduler,
        agents: ctx.agents,
        signal: ctx.signal,
        onBytes: (chunk, received) => this.onBytes(chunk, received),
        dropAtBytes: fault === 'dropMidDownload' ? Math.max(1, Math.floor(params.size / 2)) : null,
        stallAtBytes: fault === 'downloadStall' ? Math.floor(params.size * 0.3) : null,
        stallMs: ctx.time.ms(d.stallSec),
        // Outages of the download server (a service restart) last real seconds whatever the time
        // scale: retry on a real-time floor, like a GX whose curl keeps trying for half a minute.
        retryBaseMs: Math.max(DOWNLOAD_RETRY_FLOOR_MS, ctx.time.ms(d.downloadRetrySec)),
        maxAttempts: DOWNLOAD_MAX_ATTEMPTS,
      });
      digest = result.sha256;
      this.stopIfEnded();
    } catch (err) {
      if (err instanceof DownloadError && !ctx.signal.aborted) {
        this.fail(
          err.code,
          err.message,
          err.fileNotFound ? FIRMWARE_STATE.fileNotFound : FIRMWARE_STATE.updateError,
        );
        return;
      }
      throw err;
    }

    this.progress('verifying', 0);
    await this.timed('verifying', d.verifySec);
    // The fault stands for corruption on the device's side (storage, RAM): the bytes were fine.
    if (fault === 'checksumMismatch') digest = corrupt(digest);
    if (digest !== params.sha256.toLowerCase()) {
      this.fail(
        SIM_ERROR_CODES.checksumMismatch,
        `SHA-256 of the download is ${digest}, expected ${params.sha256}`,
      );
      return;
    }
    if (device.service === 'platform') this.setGx(FIRMWARE_STATE.downloadingAndInstalling, 100);

    this.progress('installing', 0);
    if (!(await this.install())) return;
    await this.reboot();
  }

  /** Returns false when the install failed (already reported). */
  private async install(): Promise<boolean> {
    const d = this.ctx.durations;
    const fault = this.exec.plan.fault;
    if (this.device.product.family === 'gx') {
      await this.timed('installing', d.gxInstallSec);
      return true;
    }
    if (this.device.product.family === 'vedirect') {
      await this.timed('installing', d.vedirectInstallSec);
      return true;
    }
    // VE.Bus: back up the settings, flash, write the merged settings back.
    if (fault === 'noResponse') {
      // Users see this as "stuck at 67 %, then an error".
      await this.timed('installing', d.vebusBackupSec / 2, 0, 1 / 12);
      this.fail(SIM_ERROR_CODES.noResponse, 'the interface did not respond');
      return false;
    }
    await this.timed('installing', d.vebusBackupSec, 0, 1 / 6);
    await this.timed('installing', d.vebusFlashSec, 1 / 6, 5 / 6);
    await this.timed('installing', d.vebusRestoreSec, 5 / 6, 1);
    if (fault === 'restoreFailed') {
      // The flash worked, the settings did not come back: new firmware, factory configuration.
      this.applyVersion(this.params.version);
      this.device.degraded = true;
      this.device.reboot();
      this.ctx.truth.setDegraded(this.device.deviceId, true);
      this.host.notify(this.device, 'FirmwareVersion');
      this.fail(
        SIM_ERROR_CODES.restoreFailed,
        'writing the configuration back failed; the device runs with default settings',
      );
      return false;
    }
    return true;
  }

  private async reboot(): Promise<void> {
    const { device, exec, ctx } = this;
    const fault = exec.plan.fault;
    const comesBack = fault !== 'neverReturns';
    // returnsOldVersion: the device boots its previous image and still says the update succeeded.
    const bootVersion = fault === 'returnsOldVersion' ? exec.fromVersion : this.params.version;
    this.progress('rebooting', 0);
    if (device.service === 'platform') {
      this.setGx(FIRMWARE_STATE.rebooting, 100);
      const back = await this.host.rebootPlatform(this.pacedMs(ctx.durations.gxRebootSec), comesBack, () => {
        this.applyVersion(bootVersion);
        device.reboot();
        device.firmwareState = FIRMWARE_STATE.idle;
        device.firmwareProgress = 0;
        this.succeed();
      });
      if (!back) this.lose();
      return;
    }
    device.online = false;
    this.host.serviceLeft(device);
    if (!comesBack) {
      this.lose();
      return;
    }
    await ctx.scheduler.sleep(this.pacedMs(ctx.durations.productRebootSec));
    this.applyVersion(bootVersion);
    device.reboot();
    device.online = true;
    this.succeed();
    this.host.serviceReturned(device);
  }

  /** Sleeps through `seconds` (at this install's pace) of `phase`, covering fraction f0..f1 of its band, a progress event per 5 %. */
  private async timed(phase: DevicePhase, seconds: number, f0 = 0, f1 = 1): Promise<void> {
    const [from, to] = PHASE_BANDS[phase];
    const steps = Math.max(1, Math.ceil(((to - from) * (f1 - f0)) / PROGRESS_STEP - 1e-9));
    const stepMs = this.pacedMs(seconds) / steps;
    for (let i = 1; i <= steps; i++) {
      await this.ctx.scheduler.sleep(stepMs);
      this.stopIfEnded();
      this.progress(phase, f0 + ((f1 - f0) * i) / steps);
    }
  }

  /**
   * Real milliseconds of `seconds` of this install's work: time-scaled, at its own pace (plan.pace).
   * The protocol's and the network's timers (stall, retry back-off) use `ctx.time.ms` unpaced.
   */
  private pacedMs(seconds: number): number {
    return this.ctx.time.ms(seconds) * this.exec.plan.pace;
  }

  /** Stops the flow (see {@link UpdateEndedError}) when the update was ended while it waited. */
  private stopIfEnded(): void {
    if (this.ended) throw new UpdateEndedError();
  }

  private onBytes(chunk: number, received: number): void {
    this.ctx.truth.addBytes(this.device.deviceId, chunk);
    const fraction = received / this.params.size;
    this.progress('downloading', fraction);
    if (this.device.service === 'platform')
      this.setGx(FIRMWARE_STATE.downloadingAndInstalling, Math.floor(fraction * 100));
  }

  private progress(phase: DevicePhase, fraction: number): void {
    // A download still running after the update was ended reports nothing more.
    if (this.ended) return;
    const exec = this.exec;
    const progress = overallProgress(phase, fraction);
    exec.phase = phase;
    exec.progress = progress;
    if (this.throttle.shouldEmit(phase, progress)) {
      this.host.sendRpc(exec.rpcId, { event: 'progress', executionId: exec.executionId, phase, progress });
    }
  }

  /** GX `Firmware/State` and `/Progress`: a state change publishes both, progress alone only per 5 % step. */
  private setGx(state: number, progress: number): void {
    const device = this.device;
    const stateChanged = device.firmwareState !== state;
    const progressChanged = device.firmwareProgress !== progress;
    device.firmwareState = state;
    device.firmwareProgress = progress;
    const step = Math.floor(progress / PROGRESS_STEP);
    const changed: string[] = [];
    if (stateChanged) changed.push('Firmware/State');
    if (stateChanged || (progressChanged && (step !== this.gxProgressStep || progress === 100)))
      changed.push('Firmware/Progress');
    this.gxProgressStep = step;
    if (changed.length > 0) this.host.notify(device, ...changed);
  }

  private applyVersion(version: string): void {
    const previous = this.device.version;
    if (version === previous) return;
    this.device.version = version;
    this.ctx.truth.recordVersion(this.device.deviceId, version, previous);
  }

  private succeed(): void {
    this.ended = true;
    const exec = this.exec;
    exec.state = 'succeeded';
    exec.phase = 'rebooting';
    exec.progress = 100;
    this.device.end();
    this.ctx.truth.finishExecution(this.truth, 'succeeded', this.device.version);
  }

  /** Gone for good: the device stays locked and off the bus; the truth records the loss now. */
  private lose(): void {
    this.ended = true;
    this.ctx.truth.finishExecution(this.truth, 'lost', this.device.version);
  }

  private fail(code: string, message: string, gxState: number = FIRMWARE_STATE.updateError): void {
    this.ended = true;
    const exec = this.exec;
    const error = { code, message };
    exec.state = 'failed';
    exec.error = error;
    this.device.end();
    if (this.device.service === 'platform') this.setGx(gxState, this.device.firmwareProgress);
    this.host.sendRpc(exec.rpcId, { event: 'failed', executionId: exec.executionId, error });
    this.ctx.truth.finishExecution(this.truth, 'failed', this.device.version, error);
    this.ctx.logger.info(
      { deviceId: this.device.deviceId, executionId: exec.executionId, code },
      'simulated update failed',
    );
  }
}

/** Flips the last hex digit: a digest that cannot match. */
function corrupt(hex: string): string {
  const last = hex.at(-1) ?? '0';
  return hex.slice(0, -1) + (last === '0' ? '1' : '0');
}
