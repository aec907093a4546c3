/**
 * What every site of a fleet shares: options, the one scheduler, the connect pacer, HTTP agents,
 * ground truth and the stop signal. Passed in, never imported as a singleton, so several fleets
 * can run in one process (parallel tests).
 */
import type http from 'node:http';
import type https from 'node:https';
import type { SimDurations, TimeScale } from './durations.js';
import type { ResolvedFleetOptions } from './fleet-options.js';
import type { GroundTruth } from './ground-truth.js';
import type { ConnectionContext } from './site-connection.js';

export interface FleetContext extends ConnectionContext {
  readonly options: ResolvedFleetOptions;
  readonly time: TimeScale;
  readonly durations: Readonly<SimDurations>;
  readonly truth: GroundTruth;
  readonly agents: { http: http.Agent; https: https.Agent };
  /** Aborted by `fleet.stop()`: downloads end, update flows unwind without reporting. */
  readonly signal: AbortSignal;
  /** A site became ready, lost its link, went down for a reboot, or died for good. */
  siteChanged(): void;
}
