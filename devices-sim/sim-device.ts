/**
 * One simulated product inside a site: its identity, firmware version, boot id, update lock and the
 * executions it remembers. The site owns publishing; this class only holds state.
 */
import {
  formatDeviceId,
  formatLocalDevice,
  type DeviceExecutionStatus,
  type DeviceStatus,
  type ProductInfo,
  type ServiceType,
} from '../src/protocol/index.js';
import { deviceLeaves, FIRMWARE_STATE, type DevicePathState, type Leaf } from './device-paths.js';
import type { InstallPlan } from './fault-plan.js';
import type { PlannedDevice } from './site-plan.js';
import { productOf } from './site-plan.js';

/** A read-only snapshot of a device, for tests and the CLI. */
export interface SimDeviceInfo {
  deviceId: string;
  portalId: string;
  service: ServiceType;
  instance: number;
  productId: number;
  productName: string;
  /** Display version, e.g. `v1.57`. */
  version: string;
  /** Present on the bus (false while a product reboots, or after it never came back). */
  online: boolean;
  busy: boolean;
  bootId: string;
  /** New firmware but the configuration was lost (`restoreFailed`). */
  degraded: boolean;
}

/**
 * The `firmware.status` answer: the protocol's `DeviceStatus` plus `degraded` (new firmware, settings
 * lost after a failed VE.Bus restore). Extra fields pass `isDeviceStatus`, so workers may ignore it.
 */
export type SimDeviceStatus = DeviceStatus & { degraded: boolean };

/** What the device remembers of one accepted execution. */
export interface DeviceExecution extends DeviceExecutionStatus {
  /** Progress events go to the out topic of the latest RPC that named this execution. */
  rpcId: string;
  fromVersion: string;
  plan: InstallPlan;
}

let bootCounter = 0;
/** Boot ids only need to differ between boots (also across simulator restarts): time + counter. */
function newBootId(): string {
  bootCounter = (bootCounter + 1) % 0x100000;
  return `${Date.now().toString(36)}-${bootCounter.toString(36)}`;
}

export class SimDevice implements DevicePathState {
  readonly deviceId: string;
  readonly portalId: string;
  readonly service: ServiceType;
  readonly instance: number;
  readonly product: ProductInfo;
  /** `<service>/<instance>`: how RPC params name the device. */
  readonly local: string;
  version: string;
  customName = '';
  /** On the bus. A GX platform is "online" whenever the site process runs. */
  online = true;
  degraded = false;
  bootId = newBootId();
  firmwareState: number = FIRMWARE_STATE.idle;
  firmwareProgress = 0;
  /** The running execution (holds the update lock), else null. */
  current: DeviceExecution | null = null;
  /** The running or last execution. */
  last: DeviceExecution | null = null;
  /** Every execution this device accepted; created on first install to keep idle devices small. */
  private known: Map<string, DeviceExecution> | null = null;

  constructor(planned: PlannedDevice) {
    this.portalId = planned.portalId;
    this.service = planned.service;
    this.instance = planned.instance;
    this.product = productOf(planned);
    this.version = planned.version;
    this.deviceId = formatDeviceId(planned);
    this.local = formatLocalDevice(planned);
  }

  get connected(): boolean {
    return this.online;
  }

  get busy(): boolean {
    return this.current !== null;
  }

  leaves(): Leaf[] {
    return deviceLeaves(this);
  }

  execution(executionId: string): DeviceExecution | undefined {
    return this.known?.get(executionId);
  }

  /** Takes the update lock for a newly accepted execution. */
  begin(execution: DeviceExecution): void {
    if (this.current) throw new Error(`${this.deviceId} is busy with ${this.current.executionId}`);
    (this.known ??= new Map()).set(execution.executionId, execution);
    this.current = execution;
    this.last = execution;
  }

  /** Releases the update lock. */
  end(): void {
    this.current = null;
  }

  /** A fresh boot: new boot id. */
  reboot(): void {
    this.bootId = newBootId();
  }

  status(): SimDeviceStatus {
    const e = this.last;
    return {
      device: this.local,
      productId: this.product.productId,
      version: this.version,
      busy: this.busy,
      bootId: this.bootId,
      execution: e && {
        executionId: e.executionId,
        jobId: e.jobId,
        state: e.state,
        phase: e.phase,
        progress: e.progress,
        error: e.error,
        targetVersion: e.targetVersion,
      },
      degraded: this.degraded,
    };
  }

  info(): SimDeviceInfo {
    return {
      deviceId: this.deviceId,
      portalId: this.portalId,
      service: this.service,
      instance: this.instance,
      productId: this.product.productId,
      productName: this.product.name,
      version: this.version,
      online: this.online,
      busy: this.busy,
      bootId: this.bootId,
      degraded: this.degraded,
    };
  }
}
