/**
 * The MQTT connection of one simulated GX, as a short list of named steps:
 * credentials → connect (with the Last Will) → subscribe → announce (retained Serial) → ready.
 * mqtt.js's own reconnect is off: an unexpected close is retried here with jittered exponential
 * back-off through the fleet's connect pacer, so a broker restart does not bring a stampede back.
 */
import type { Logger } from 'pino';
import { connectMqtt, type MqttClient } from '../src/mqtt/connect.js';
import { serialTopic } from '../src/protocol/index.js';
import type { ConnectPacer } from './connect-pacer.js';
import type { Scheduler, TimerHandle } from './scheduler.js';

/** The fleet-wide things a connection needs. */
export interface ConnectionContext {
  readonly url: string;
  readonly clientIdPrefix: string;
  readonly credentials: (portalId: string) => string | Promise<string>;
  readonly scheduler: Scheduler;
  readonly pacer: ConnectPacer;
  readonly logger: Logger;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly mqttKeepaliveSec: number;
}

export interface ConnectionEvents {
  /** Subscribed and announced: the site can be addressed now. */
  onReady(): void;
  /** The connection was lost without us asking (not a reboot, not a stop). */
  onLost(): void;
  onMessage(topic: string, payload: Buffer): void;
}

export type ConnectionState = 'idle' | 'queued' | 'connecting' | 'ready' | 'backoff' | 'down' | 'stopped';

/** `{"value":null}`: what the Serial topic says of a site that is not there (Last Will and reboots). */
const OFFLINE_SERIAL = Buffer.from('{"value":null}');

export class SiteConnection {
  private client: MqttClient | null = null;
  private retryTimer: TimerHandle | null = null;
  private failures = 0;
  state: ConnectionState = 'idle';

  constructor(
    private readonly ctx: ConnectionContext,
    readonly portalId: string,
    private readonly events: ConnectionEvents,
  ) {}

  get ready(): boolean {
    return this.state === 'ready' && this.client?.connected === true;
  }

  /** Queues a connection attempt with the pacer (no-op unless idle, down or backing off). */
  start(): void {
    if (this.state !== 'idle' && this.state !== 'down' && this.state !== 'backoff') return;
    this.ctx.scheduler.cancel(this.retryTimer);
    this.retryTimer = null;
    this.state = 'queued';
    this.ctx.pacer.enqueue((done) => {
      this.open().then(done, (err: unknown) => {
        done();
        this.ctx.logger.warn({ portalId: this.portalId, err }, 'site connection attempt failed');
        this.retryLater();
      });
    });
  }

  /**
   * Publishes when connected; a device with no link drops the message, it does not queue it.
   * While still announcing (the Serial's PUBACK not back yet) the link is up too: a worker that saw
   * the Serial may already have asked for a full republish, and dropping that answer left sites
   * out of the inventory for good whenever the broker delivered faster than it acknowledged.
   */
  publish(topic: string, payload: string | Buffer, retain = false): void {
    const linked = this.state === 'ready' || this.state === 'connecting';
    if (linked && this.client?.connected) this.client.publish(topic, payload, { qos: 0, retain });
  }

  /**
   * Deliberately goes offline, as before a reboot or at fleet stop: retained `{"value":null}` on the
   * Serial topic, then a clean DISCONNECT (so the broker does not also fire the will).
   * Resolves once the socket is closed; `forceAfterMs` bounds the wait on a broker that stopped answering.
   */
  async goOffline(next: 'down' | 'stopped', forceAfterMs = 2000): Promise<void> {
    this.ctx.scheduler.cancel(this.retryTimer);
    this.retryTimer = null;
    this.state = next;
    const client = this.client;
    this.client = null;
    if (!client) return;
    const connected = client.connected;
    if (connected) client.publish(serialTopic(this.portalId), OFFLINE_SERIAL, { qos: 1, retain: true });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => client.end(true, () => resolve()), forceAfterMs);
      client.end(!connected, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Simulates a network failure: the socket dies without DISCONNECT, the broker publishes the will. */
  dropLink(): void {
    this.client?.stream.destroy();
  }

  private async open(): Promise<void> {
    if (this.state !== 'queued') return;
    this.state = 'connecting';
    const password = await this.ctx.credentials(this.portalId);
    if (this.state !== 'connecting') return; // stopped while waiting for credentials
    const id = this.portalId;
    const client = connectMqtt(this.ctx.url, {
      clientId: `${this.ctx.clientIdPrefix}${id}`,
      username: id,
      password,
      clean: true,
      keepalive: this.ctx.mqttKeepaliveSec,
      reconnectPeriod: 0,
      resubscribe: false,
      queueQoSZero: false,
      will: { topic: serialTopic(id), payload: OFFLINE_SERIAL, qos: 1, retain: true },
    });
    this.client = client;
    await new Promise<void>((handshakeDone) => {
      let settled = false;
      const settle = () => {
        if (!settled) {
          settled = true;
          handshakeDone();
        }
      };
      client.on('connect', () => {
        this.announce(client).then(settle, (err: unknown) => {
          settle();
          if (this.client !== client) return;
          this.ctx.logger.warn({ portalId: id, err }, 'site subscribe/announce failed');
          client.end(true);
        });
      });
      client.on('message', (topic, payload) => {
        if (this.client === client) this.events.onMessage(topic, payload);
      });
      client.on('error', (err) => {
        this.ctx.logger.debug({ portalId: id, err: err.message }, 'site MQTT error');
      });
      client.on('close', () => {
        settle();
        if (this.client !== client) return; // a deliberate end: goOffline already moved on
        this.client = null;
        client.end(true);
        const wasReady = this.state === 'ready';
        this.retryLater();
        if (wasReady) this.events.onLost();
      });
    });
  }

  private async announce(client: MqttClient): Promise<void> {
    const id = this.portalId;
    await client.subscribeAsync([`R/${id}/#`, `W/${id}/#`, `P/${id}/in/+`], { qos: 0 });
    // QoS 1 so that "ready" means the broker holds the retained Serial: discovery sees the site.
    await client.publishAsync(serialTopic(id), JSON.stringify({ value: id }), { qos: 1, retain: true });
    if (this.client !== client || !client.connected) return;
    this.state = 'ready';
    this.failures = 0;
    this.events.onReady();
  }

  private retryLater(): void {
    if (this.state === 'stopped' || this.state === 'down') return;
    this.state = 'backoff';
    this.failures++;
    const cap = Math.min(
      this.ctx.reconnectMaxMs,
      this.ctx.reconnectMinMs * 2 ** Math.min(this.failures - 1, 20),
    );
    const delay = cap / 2 + Math.random() * (cap / 2);
    this.ctx.scheduler.cancel(this.retryTimer);
    this.retryTimer = this.ctx.scheduler.after(delay, () => {
      this.retryTimer = null;
      this.start();
    });
  }
}
