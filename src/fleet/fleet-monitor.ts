/**
 * The fleet inventory, learned the way VRM learns it: discover sites by their retained serial,
 * ask each for a full republish (an empty keepalive), and record every product it reports.
 * Presence follows the serial: a null serial (the site's last will) marks its devices offline.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { DevicePayloadStats } from '../mqtt/device-payload-stats.js';
import { clientFeed, type MessageFeed } from '../mqtt/message-feed.js';
import {
  formatDeviceId,
  MAX_PAYLOAD_BYTES,
  formatFirmwareVersion,
  isServiceType,
  keepaliveTopic,
  parseDeviceTopic,
  parseNotification,
  productById,
  SERIAL_DISCOVERY_TOPIC,
  type DeviceRecord,
  type ServiceType,
} from '../protocol/index.js';
import type { DeviceStore } from '../store/device-store.js';
import type { JobStore } from '../store/job-store.js';
import type { StatusPublisher } from '../status/status-publisher.js';
import type { InventoryClaim } from './inventory-claim.js';

/** The product paths the inventory needs; subscribed with wildcards for every site. */
const PATHS = ['ProductId', 'ProductName', 'FirmwareVersion', 'Connected', 'CustomName'] as const;
type InventoryPath = (typeof PATHS)[number];
const FILTERS = [
  SERIAL_DISCOVERY_TOPIC,
  'N/+/full_publish_completed',
  ...PATHS.map((p) => `N/+/+/+/${p}`),
];

/**
 * Products one site may report. A Cerbo GX supervises a few dozen at most; the cap keeps a site that
 * invents instances (0…65535 per service type) from filling the inventory and Redis.
 */
export const MAX_PRODUCTS_PER_SITE = 100;
const MAX_NAME_CHARS = 128;
const MAX_VERSION_CHARS = 32;

/** What each inventory path may hold (Venus sends `{"value": null}` for an invalidated item). */
const LEAF_VALID: Record<InventoryPath, (v: unknown) => boolean> = {
  ProductId: (v) => v === null || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff),
  ProductName: (v) => v === null || (typeof v === 'string' && v.length <= MAX_NAME_CHARS),
  CustomName: (v) => v === null || (typeof v === 'string' && v.length <= MAX_NAME_CHARS),
  FirmwareVersion: (v) =>
    v === null ||
    (typeof v === 'string' && v.length <= MAX_VERSION_CHARS) ||
    (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff),
  Connected: (v) => v === null || v === 0 || v === 1,
};

/** How long {@link FleetMonitor.stop} waits for the handlers already running. */
export const STOP_WAIT_MS = 5_000;

/** A site asks for at most one full republish this often (Venus rate-limits them too). */
export const REINVENTORY_MIN_INTERVAL_MS = 5_000;

interface SiteView {
  online: boolean;
  /** Its devices were marked offline and it has not been online since: another null costs nothing. */
  offlineMarked: boolean;
  lastInventoryAt: number;
  /**
   * A full republish was asked for and has not completed. `full_publish_completed` without one is out
   * of order and dropped: committing costs a write and a retained publish per product, which a site
   * could otherwise make the service repeat at the rate it sends.
   */
  inventoryPending: boolean;
  /** `<service>/<instance>` → values seen since the last full republish. */
  products: Map<string, Partial<Record<InventoryPath, unknown>>>;
}

/** A product whose changed values wait to be applied. */
interface QueuedChange {
  portalId: string;
  service: string;
  instance: number;
}

export class FleetMonitor {
  private readonly sites = new Map<string, SiteView>();
  /** Products whose changes wait for the next batch, by `<portalId>/<service>/<instance>` (see changeSoon). */
  private queued = new Map<string, QueuedChange>();
  /** Settles once the next batch (the one `queued` goes into) has been applied; null when none is scheduled. */
  private nextBatch: Promise<void> | null = null;
  /** The batch scheduled last: the next one starts after it. */
  private lastBatch: Promise<void> = Promise.resolve();
  /** Handlers (and inventory requests) still running: {@link stop} lets them finish. */
  private readonly inFlight = new Set<Promise<void>>();
  private readonly onMessage = (topic: string, payload: Buffer) => {
    if (this.stopped) return;
    this.track(this.handle(topic, payload), (err) => this.logger.error({ err, topic }, 'fleet monitor failed on a message'));
  };
  private unsubscribe: (() => Promise<void>) | null = null;
  private stopped = false;

  constructor(
    private readonly mqtt: MqttClient,
    private readonly devices: DeviceStore,
    private readonly jobs: JobStore,
    private readonly publisher: StatusPublisher,
    private readonly logger: Logger,
    private readonly stats: DevicePayloadStats = new DevicePayloadStats(),
    /** Decides which api instance asks a site for its republish (see inventory-claim.ts); default: this one. */
    private readonly claim: InventoryClaim = async () => true,
    /** Where the notifications come from (message-feed.ts); default: `mqtt`. Keepalives always go out through `mqtt`. */
    private readonly feed: MessageFeed = clientFeed(mqtt),
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.feed.subscribe(FILTERS, this.onMessage);
  }

  /**
   * Stops taking messages and waits (at most `waitMs`) for the handlers already running: a site that
   * went offline as the service stops (its simulator or gateway stopping too) has its devices marked
   * offline and published before the broker and Redis behind this monitor close.
   */
  async stop(waitMs = STOP_WAIT_MS): Promise<void> {
    this.stopped = true;
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = null;
    await unsubscribe?.();
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<true>((resolve) => {
      timer = setTimeout(() => resolve(true), waitMs);
    });
    // A handler may start another (an inventory request): wait until none is left.
    while (this.inFlight.size > 0) {
      if ((await Promise.race([Promise.all([...this.inFlight]), gaveUp])) === true) {
        this.logger.warn({ running: this.inFlight.size, waitMs }, 'fleet monitor stopped with handlers still running');
        break;
      }
    }
    clearTimeout(timer);
  }

  /** Keeps `work` in {@link inFlight} until it settles; a failure goes to `onError`. */
  private track(work: Promise<void>, onError: (err: unknown) => void): void {
    const tracked: Promise<void> = work.then(
      () => void this.inFlight.delete(tracked),
      (err: unknown) => {
        this.inFlight.delete(tracked);
        onError(err);
      },
    );
    this.inFlight.add(tracked);
  }

  /** Sites seen online now. */
  onlineSites(): number {
    let n = 0;
    for (const s of this.sites.values()) if (s.online) n++;
    return n;
  }

  private async handle(topic: string, payload: Buffer): Promise<void> {
    const t = parseDeviceTopic(topic);
    if (!t || t.kind !== 'N') return;
    const { portalId, path } = t;
    const fields = { portalId, topic, bytes: payload.length };
    if (payload.length > MAX_PAYLOAD_BYTES) {
      this.stats.drop('fleet-monitor', 'oversize', this.logger, fields, 'dropped oversize notification');
      return;
    }
    const site = this.site(portalId);
    if (path.length === 3 && path[0] === 'system' && path[2] === 'Serial') {
      const n = parseNotification(payload);
      // Not JSON: counted, and taken as "not this site's serial", like any other value.
      if (!n && payload.length > 0) {
        this.stats.drop('fleet-monitor', 'malformed', this.logger, fields, 'dropped malformed notification');
      }
      const online = !!n && n.value === portalId;
      if (online) {
        site.online = true;
        site.offlineMarked = false;
        this.requestInventory(portalId, site);
      } else if (site.online || (!site.offlineMarked && (payload.length === 0 || (n && n.value === null)))) {
        site.online = false;
        site.offlineMarked = true;
        await this.markSiteOffline(portalId);
      }
      return;
    }
    if (path.length === 1 && path[0] === 'full_publish_completed') {
      if (!site.inventoryPending) {
        this.stats.drop('fleet-monitor', 'out-of-order', this.logger, fields, 'dropped full_publish_completed nobody asked for');
        return;
      }
      site.inventoryPending = false;
      await this.commitInventory(portalId, site);
      return;
    }
    if (path.length !== 3 || !isServiceType(path[0]) || !/^\d{1,5}$/.test(path[1])) return;
    const leaf = path[2] as InventoryPath;
    if (!PATHS.includes(leaf)) return;
    if (Number(path[1]) > 65535) {
      this.stats.drop('fleet-monitor', 'invalid', this.logger, fields, 'dropped notification of an impossible instance');
      return;
    }
    const key = `${path[0]}/${path[1]}`;
    const n = payload.length === 0 ? { value: null } : parseNotification(payload);
    if (!n) {
      this.stats.drop('fleet-monitor', 'malformed', this.logger, fields, 'dropped malformed notification');
      return;
    }
    if (!LEAF_VALID[leaf](n.value)) {
      this.stats.drop('fleet-monitor', 'invalid', this.logger, fields, 'dropped notification with an invalid value');
      return;
    }
    if (!site.products.has(key) && site.products.size >= MAX_PRODUCTS_PER_SITE) {
      this.stats.drop('fleet-monitor', 'over-limit', this.logger, fields, 'dropped notification: too many products on this site');
      return;
    }
    const values = site.products.get(key) ?? {};
    values[leaf] = n.value;
    site.products.set(key, values);
    // Outside a full republish (e.g. a version change after an update), apply it at once.
    if (Date.now() - site.lastInventoryAt > REINVENTORY_MIN_INTERVAL_MS && (leaf === 'FirmwareVersion' || leaf === 'Connected')) {
      await this.changeSoon(portalId, path[0], Number(path[1]));
    }
  }

  private site(portalId: string): SiteView {
    let s = this.sites.get(portalId);
    if (!s) {
      s = { online: false, offlineMarked: false, lastInventoryAt: 0, inventoryPending: false, products: new Map() };
      this.sites.set(portalId, s);
    }
    return s;
  }

  private requestInventory(portalId: string, site: SiteView): void {
    const now = Date.now();
    if (now - site.lastInventoryAt < REINVENTORY_MIN_INTERVAL_MS) return;
    site.lastInventoryAt = now;
    site.products.clear();
    site.inventoryPending = true;
    // An empty keepalive asks Venus for a full republish, closed by full_publish_completed. When another
    // instance asked already, this one records the same republish without asking again.
    this.track(
      this.claim(portalId).then(
        (mine) => {
          if (mine) this.mqtt.publish(keepaliveTopic(portalId), '', { qos: 0 });
        },
        (err: unknown) => {
          this.logger.warn({ err, portalId }, 'inventory claim failed; asking anyway');
          this.mqtt.publish(keepaliveTopic(portalId), '', { qos: 0 });
        },
      ),
      (err) => this.logger.error({ err, portalId }, 'fleet monitor failed to ask for an inventory'),
    );
  }

  private async commitInventory(portalId: string, site: SiteView): Promise<void> {
    const now = new Date().toISOString();
    const existing = new Map((await this.devices.getMany(this.deviceIds(portalId, site))).filter(Boolean).map((d) => [d!.deviceId, d!]));
    const records: DeviceRecord[] = [];
    for (const [key, values] of site.products) {
      const [service, inst] = key.split('/');
      const rec = this.toRecord(portalId, service as ServiceType, Number(inst), values, site.online, now, existing);
      if (rec) records.push(rec);
    }
    for (const r of records) await this.noteLateVersion(existing.get(r.deviceId), r);
    await this.devices.upsert(records);
    for (const r of records) this.publisher.device(r);
    this.logger.info({ portalId, devices: records.length }, 'site inventoried');
  }

  /**
   * Applies a product's changed values once the messages that arrived with them are in: a product
   * leaving the bus sends `Connected` 0 and then an empty payload on every one of its topics, and
   * coming back every topic again, each otherwise a read, a write and a retained publish of its own
   * (and racing each other). The changes of every product that arrive in one event-loop iteration are
   * applied as one batch (one read and one write in Redis for all of them: at fleet scale hundreds of
   * products reboot each second). Changes arriving while a batch is being applied go into the next
   * one, which starts after it, so the last one always lands.
   */
  private changeSoon(portalId: string, service: string, instance: number): Promise<void> {
    this.queued.set(`${portalId}/${service}/${instance}`, { portalId, service, instance });
    if (!this.nextBatch) {
      const previous = this.lastBatch;
      this.nextBatch = this.lastBatch = (async () => {
        await previous;
        await new Promise((resolve) => setImmediate(resolve));
        const batch = [...this.queued.values()];
        this.queued = new Map();
        this.nextBatch = null;
        try {
          await this.applyChanges(batch);
        } catch (err) {
          // Logged once for the batch, not once per message waiting on it.
          this.logger.error({ err, products: batch.length }, 'fleet monitor failed to apply product changes');
        }
      })();
    }
    return this.nextBatch;
  }

  private async applyChanges(batch: QueuedChange[]): Promise<void> {
    const ids = batch.map(({ portalId, service, instance }) => formatDeviceId({ portalId, service: service as ServiceType, instance }));
    const current = await this.devices.getMany(ids);
    const now = new Date().toISOString();
    const changed: { cur: DeviceRecord; rec: DeviceRecord }[] = [];
    batch.forEach(({ portalId, service, instance }, i) => {
      const cur = current[i];
      const site = this.site(portalId);
      const values = site.products.get(`${service}/${instance}`);
      if (!cur || !values) return;
      const rec = this.toRecord(portalId, cur.service, instance, values, site.online, now, new Map([[cur.deviceId, cur]]));
      if (rec && (rec.version !== cur.version || rec.online !== cur.online)) changed.push({ cur, rec });
    });
    if (changed.length === 0) return;
    for (const { cur, rec } of changed) await this.noteLateVersion(cur, rec);
    await this.devices.upsert(changed.map((c) => c.rec));
    for (const { rec } of changed) this.publisher.device(rec);
  }

  private deviceIds(portalId: string, site: SiteView): string[] {
    return [...site.products.keys()].map((k) => {
      const [service, inst] = k.split('/');
      return formatDeviceId({ portalId, service: service as ServiceType, instance: Number(inst) });
    });
  }

  private toRecord(
    portalId: string,
    service: ServiceType,
    instance: number,
    v: Partial<Record<InventoryPath, unknown>>,
    siteOnline: boolean,
    now: string,
    existing: Map<string, DeviceRecord>,
  ): DeviceRecord | null {
    const deviceId = formatDeviceId({ portalId, service, instance });
    const prev = existing.get(deviceId);
    const productId = typeof v.ProductId === 'number' ? v.ProductId : (prev?.productId ?? null);
    if (productId === null) return null;
    const product = productById(productId);
    const version = product && v.FirmwareVersion !== undefined ? formatFirmwareVersion(product.family, v.FirmwareVersion) : (prev?.version ?? null);
    return {
      deviceId,
      portalId,
      service,
      instance,
      productId,
      productName: typeof v.ProductName === 'string' ? v.ProductName : (product?.name ?? prev?.productName ?? null),
      customName: typeof v.CustomName === 'string' ? v.CustomName : (prev?.customName ?? null),
      version,
      online: siteOnline && v.Connected !== 0 && v.Connected !== null,
      lastSeenAt: now,
      lastUpdate: prev?.lastUpdate ?? null,
    };
  }

  /**
   * A device that ends up on the target version after its execution ended otherwise (typically
   * timed out while it was still working) is recorded truthfully: the inventory shows the version,
   * the last update says when it was reported, and the job's log says so. The execution keeps its
   * terminal state: it did not succeed within its limits.
   */
  private async noteLateVersion(prev: DeviceRecord | undefined, next: DeviceRecord): Promise<void> {
    const last = prev?.lastUpdate;
    if (!last || last.state === 'succeeded' || last.lateVersionReportedAt) return;
    if (!next.version || next.version === prev.version || next.version !== last.toVersion) return;
    const at = new Date().toISOString();
    next.lastUpdate = { ...last, lateVersionReportedAt: at };
    const event = await this.jobs.appendEvent(
      last.jobId,
      { deviceId: next.deviceId, level: 'warn', message: `device reports ${next.version} after the execution ended ${last.state}; recorded, execution state unchanged` },
      at,
    );
    this.publisher.event(event);
    this.logger.warn({ jobId: last.jobId, deviceId: next.deviceId, version: next.version, state: last.state }, 'late version report after execution ended');
  }

  private async markSiteOffline(portalId: string): Promise<void> {
    const ids = await this.devices.siteDeviceIds(portalId);
    if (ids.length === 0) return;
    const records: DeviceRecord[] = [];
    for (const d of await this.devices.getMany(ids)) if (d) records.push({ ...d, online: false });
    await this.devices.upsert(records);
    for (const r of records) this.publisher.device(r);
    this.logger.info({ portalId, devices: records.length }, 'site offline');
  }
}
