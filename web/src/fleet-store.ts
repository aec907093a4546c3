/**
 * The fleet inventory in the browser: one `GET /api/devices` snapshot, then kept current by the
 * retained `fleetflash/devices/<deviceId>` topics. Subscribed before the snapshot is fetched, so a
 * change can only be missed by neither; a live record always wins over the snapshot, because the
 * broker holds the latest publish while the snapshot may be older.
 */
import { fleetDeviceTopic, type DeviceRecord } from '../../src/protocol/index.js';
import type { ApiClient } from './api-client.js';
import type { LiveConnection, LiveSubscription } from './live-connection.js';
import { isDeviceRecord } from './records.js';

/** Called with the ids that changed (all of them after the snapshot). */
export type FleetListener = (changed: ReadonlySet<string>) => void;

/** Shared, live device inventory. */
export class FleetStore {
  readonly #devices = new Map<string, DeviceRecord>();
  /** Device ids that had a live record before the snapshot arrived: the snapshot must not overwrite them. */
  readonly #liveSeen = new Set<string>();
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
    this.#subscription ??= this.live.subscribe(fleetDeviceTopic('+'), (_topic, payload) =>
      this.#onLive(payload),
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

  #onLive(payload: unknown): void {
    if (!isDeviceRecord(payload)) return;
    if (!this.#loaded) this.#liveSeen.add(payload.deviceId);
    if (!this.#devices.has(payload.deviceId)) this.#order = null;
    this.#devices.set(payload.deviceId, payload);
    if (this.#loaded) this.#emit(new Set([payload.deviceId]));
  }

  #emit(changed: ReadonlySet<string>): void {
    for (const l of [...this.#listeners]) l(changed);
  }
}
