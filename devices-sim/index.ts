/**
 * The device simulator: thousands of simulated Victron GX sites, each a real MQTT connection
 * speaking the Venus OS dialect, for tests, benchmarks and the demo. See devices-sim/README.md.
 */
export { startFleet, type Fleet, type FleetStats } from './fleet.js';
export { DEFAULT_CONNECT_RATE_PER_SEC, type FleetOptions } from './fleet-options.js';
export {
  FAULT_KINDS,
  faultApplies,
  installPace,
  isFaultKind,
  plannedFault,
  planInstall,
  TYPICAL_TIMING_SPREAD,
  type FaultKind,
  type FaultRates,
  type InstallPlan,
} from './fault-plan.js';
export { portalIdsFor } from './portal-ids.js';
export {
  GroundTruth,
  type DeviceTruth,
  type ExecutionResult,
  type ExecutionTruth,
  type InstallRequestRecord,
} from './ground-truth.js';
export type { SimDevice, SimDeviceInfo, SimDeviceStatus } from './sim-device.js';
export type { SimSite } from './sim-site.js';
export {
  FIRST_INSTANCE,
  PRODUCT_KINDS,
  planSite,
  type InitialVersionChooser,
  type InitialVersions,
  type PlannedDevice,
  type ProductKind,
  type ProductMix,
} from './site-plan.js';
export { DEFAULT_DURATIONS, realTimeProtocolTimers, type SimDurations } from './durations.js';
export { FIRMWARE_STATE } from './device-paths.js';
export {
  NOT_UPDATABLE_CODES,
  NOT_UPDATABLE_REASONS,
  SIM_ERROR_CODES,
  type NotUpdatableCode,
} from './sim-errors.js';
