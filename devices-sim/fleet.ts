/**
 * A fleet of simulated GX sites in one process: plans the sites, connects them at a controlled rate
 * through one pacer and one scheduler, and exposes what they run and what really happened.
 */
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { ConnectPacer } from './connect-pacer.js';
import type { FleetContext } from './fleet-context.js';
import { resolveFleetOptions, type FleetOptions, type ResolvedFleetOptions } from './fleet-options.js';
import { GroundTruth } from './ground-truth.js';
import { portalIdsFor } from './portal-ids.js';
import { Scheduler, type TimerHandle } from './scheduler.js';
import type { SimDeviceInfo } from './sim-device.js';
import { SimSite } from './sim-site.js';
import { planSite } from './site-plan.js';

/** Counts for a live summary. `failed` includes devices lost after a reboot. */
export interface FleetStats {
  connected: number;
  updating: number;
  succeeded: number;
  failed: number;
  sites: number;
}

export interface Fleet {
  readonly sites: SimSite[];
  /** Every device of every site, as it is now. */
  devices(): SimDeviceInfo[];
  site(portalId: string): SimSite | undefined;
  readonly truth: GroundTruth;
  stats(): FleetStats;
  /** Resolves once every site that is meant to be up (not lost for good) is connected; rejects after `timeoutMs`. */
  waitConnected(timeoutMs?: number): Promise<void>;
  /** Closes every connection, download and timer; each site first marks itself offline (retained null Serial). */
  stop(): Promise<void>;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  timer: TimerHandle;
}

class SimFleet implements Fleet {
  readonly sites: SimSite[];
  readonly truth: GroundTruth;
  private readonly byPortalId: Map<string, SimSite>;
  private readonly ctx: FleetContext;
  private readonly scheduler = new Scheduler();
  private readonly abort = new AbortController();
  private readonly agents = {
    http: new http.Agent({ keepAlive: false }),
    https: new https.Agent({ keepAlive: false }),
  };
  private waiters: Waiter[] = [];
  private checkTimer: TimerHandle | null = null;
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: ResolvedFleetOptions) {
    // Every download in flight listens for the fleet's stop: thousands at once are expected.
    setMaxListeners(0, this.abort.signal);
    const o = options;
    this.truth = new GroundTruth(() => this.versions());
    this.ctx = {
      options: o,
      url: o.url,
      clientIdPrefix: o.clientIdPrefix,
      credentials: o.credentials,
      scheduler: this.scheduler,
      pacer: new ConnectPacer(this.scheduler, o.connectRatePerSec),
      logger: o.logger,
      reconnectMinMs: o.reconnectMinMs,
      reconnectMaxMs: o.reconnectMaxMs,
      mqttKeepaliveSec: o.mqttKeepaliveSec,
      time: o.time,
      durations: o.durations,
      truth: this.truth,
      agents: this.agents,
      signal: this.abort.signal,
      siteChanged: () => this.scheduleCheck(),
    };
    this.sites = portalIdsFor(o.sites, o.seed, o.portalIdSalt).map(
      (portalId) => new SimSite(this.ctx, portalId, planSite(o.seed, portalId, o.mix, o.initialVersions)),
    );
    this.byPortalId = new Map(this.sites.map((s) => [s.portalId, s]));
  }

  start(): void {
    for (const site of this.sites) site.start();
  }

  devices(): SimDeviceInfo[] {
    const out: SimDeviceInfo[] = [];
    for (const site of this.sites) {
      for (const d of site.devices) {
        const info = d.info();
        // Nothing of a site is reachable while its GX is down.
        if (!site.up) info.online = false;
        out.push(info);
      }
    }
    return out;
  }

  site(portalId: string): SimSite | undefined {
    return this.byPortalId.get(portalId);
  }

  stats(): FleetStats {
    const counts = { succeeded: 0, failed: 0 };
    for (const e of this.truth.executions()) {
      if (e.result === 'succeeded') counts.succeeded++;
      else if (e.result === 'failed' || e.result === 'lost') counts.failed++;
    }
    return {
      connected: this.connectedCount(),
      updating: this.truth.updatingNow(),
      ...counts,
      sites: this.sites.length,
    };
  }

  waitConnected(timeoutMs = this.options.connectTimeoutMs): Promise<void> {
    if (this.stopping) return Promise.reject(new Error('fleet stopped'));
    if (this.allUp()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: this.scheduler.after(timeoutMs, () => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(
            new Error(
              `only ${this.connectedCount()} of ${this.sites.length} sites connected after ${timeoutMs} ms`,
            ),
          );
        }),
      };
      this.waiters.push(waiter);
    });
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(new Error('fleet stopped'));
    this.ctx.pacer.stop();
    this.abort.abort();
    this.scheduler.stop();
    await Promise.all(this.sites.map((s) => s.stop()));
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private connectedCount(): number {
    let n = 0;
    for (const s of this.sites) if (s.connected) n++;
    return n;
  }

  private allUp(): boolean {
    return this.sites.every((s) => s.connected || s.dead);
  }

  /** Coalesces site changes: 10,000 sites connecting must not mean 10,000 scans of 10,000 sites. */
  private scheduleCheck(): void {
    if (this.waiters.length === 0 || this.checkTimer) return;
    this.checkTimer = this.scheduler.after(5, () => {
      this.checkTimer = null;
      this.checkWaiters();
    });
  }

  private checkWaiters(): void {
    if (this.waiters.length === 0 || !this.allUp()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      this.scheduler.cancel(w.timer);
      w.resolve();
    }
  }

  private *versions(): Iterable<readonly [string, string]> {
    for (const site of this.sites) for (const d of site.devices) yield [d.deviceId, d.version] as const;
  }
}

/**
 * Starts a simulated fleet. Resolves once every site is connected (unless `waitForConnect: false`);
 * if they do not all connect within `connectTimeoutMs`, stops the fleet and rejects.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const fleet = new SimFleet(resolveFleetOptions(options));
  fleet.start();
  if (options.waitForConnect === false) return fleet;
  try {
    await fleet.waitConnected();
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return fleet;
}
