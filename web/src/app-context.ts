/** What every view gets from the shell: the API, the live connection, the user and shared state. */
import type { ApiClient, Me } from './api-client.js';
import type { FleetStore } from './fleet-store.js';
import type { LiveConnection } from './live-connection.js';

/** Shared by the views of one signed-in session. */
export interface AppContext {
  api: ApiClient;
  live: LiveConnection;
  fleet: FleetStore;
  me: Me;
  /** Operators launch, upload and abort; viewers never see those controls. */
  canOperate: boolean;
  /** Device ids picked in the fleet view, read by the launch view. */
  selection: Set<string>;
  /** Goes to a hash route, e.g. `#/jobs/j123`. */
  navigate(hash: string): void;
}

/** A mounted view; the shell calls `close` before showing the next one. */
export interface View {
  element: HTMLElement;
  /** The document title part for this view. */
  title: string;
  close(): void;
}
