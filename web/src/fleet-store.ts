/**
 * The fleet inventory in the browser: one `GET /api/devices` snapshot, then kept current by the
 * retained `fleetflash/devices/<deviceId>` topics. Subscribed before the snapshot is fetched, so a
 * change can only be missed by neither; a live record always wins over the snapshot, because the
 * broker holds the latest publish while the snapshot may be older.
 *
 * The retained copies the broker sends for a SUBSCRIBE are the state it read at that moment, and a
 * record published just after can reach the page first (aedes adds the subscription, then streams
 * the retained store; at fleet scale that stream is long). So a retained copy of a device that
 * already had a published record since this subscription was sent is older and is dropped. After a
 * reconnect (or a credential renewal) the new subscription's copies count again: changes made while
 * no connection was subscribed arrive only as those copies.
 */
import { fleetDeviceTopic, type DeviceRecord } from '../../src/protocol/index.js';
import type { ApiClient } from './api-client.js';
import type { LiveConnection, LiveSubscription, MessageOrigin } from './live-connection.js';
import { isDeviceRecord } from './records.js';

/** Called with the ids that changed (all of them after the snapshot). */
export type FleetListener = (changed: ReadonlySet<string>) => void;

/** Shared, live device inventory. */
export class FleetStore {
  readonly #devices = new Map<string, DeviceRecord>();
  /** Device ids that had a live record before the snapshot arrived: the snapshot must not overwrite them. */
  readonly #liveSeen = new Set<string>();
  /** Device ids with a published (not retained) record since the SUBSCRIBE numbered {@link #subscribeNo}. */
  readonly #publishedSince = new Set<string>();
  #subscribeNo = 0;
  readonly #listeners = new Set<FleetListener>();
  /** Device ids in order; rebuilt only when a device appears, not on every live update. */
  #order: string[] | null = null;
  #subscription: LiveSubscription | null = null;
  #loading: Promise<void> | null = null;
  #loaded = false;

  constructor(
    private readonly api: ApiClient,
    private readonly live: LiveConnection,
  ) {}

  /** True once the snapshot is in. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** Every known device, in device-id order. */
  list(): DeviceRecord[] {
    this.#order ??= [...this.#devices.keys()].sort();
    return this.#order.map((id) => this.#devices.get(id)!);
  }

  /** The current record of one device. */
  get(deviceId: string): DeviceRecord | undefined {
    return this.#devices.get(deviceId);
  }

  /** Subscribes (once) and loads the snapshot (once); later calls wait for the same load. */
  load(): Promise<void> {
    // The wildcard level stands in for the device id; the protocol module builds the topic.
    this.#subscription ??= this.live.subscribe(fleetDeviceTopic('+'), (_topic, payload, origin) =>
      this.#onLive(payload, origin),
    );
    this.#loading ??= this.api.devices().then(
      (devices) => {
        for (const d of devices) if (!this.#liveSeen.has(d.deviceId)) this.#devices.set(d.deviceId, d);
        this.#order = null;
        this.#liveSeen.clear();
        this.#loaded = true;
        this.#emit(new Set(this.#devices.keys()));
      },
      (err: unknown) => {
        this.#loading = null;
        throw err;
      },
    );
    return this.#loading;
  }

  /** Listens for changes; returns the unsubscribe function. */
  onChange(listener: FleetListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#subscription?.close();
    this.#subscription = null;
    this.#listeners.clear();
  }

  #onLive(payload: unknown, origin: MessageOrigin): void {
    if (!isDeviceRecord(payload)) return;
    if (origin.subscription !== this.#subscribeNo) {
      this.#subscribeNo = origin.subscription;
      this.#publishedSince.clear();
    }
    if (!origin.retained) this.#publishedSince.add(payload.deviceId);
    else if (this.#publishedSince.has(payload.deviceId)) return;
    if (!this.#loaded) this.#liveSeen.add(payload.deviceId);
    if (!this.#devices.has(payload.deviceId)) this.#order = null;
    this.#devices.set(payload.deviceId, payload);
    if (this.#loaded) this.#emit(new Set([payload.deviceId]));
  }

  #emit(changed: ReadonlySet<string>): void {
    for (const l of [...this.#listeners]) l(changed);
  }
}
