/**
 * A worker process's link to the sites it supervises, over its one service MQTT connection:
 * RPC calls on `P/<id>/in|out/…`, device events routed by execution id, the site's presence
 * (its retained serial), each product's presence (its `Connected` leaf, so a product back from
 * its reboot is asked at once instead of at the next poll), and the keepalive that keeps a
 * supervised site's notifications flowing. Subscriptions are reference-counted per site, so
 * thousands of executions share them. The connection may be shared with other components (the
 * fleet monitor in a one-process deployment): only the topics subscribed here are acted on.
 *
 * A site's SUBSCRIBE and UNSUBSCRIBE never overlap: each waits for the previous one's
 * acknowledgement. aedes handles the packets that arrive in one read concurrently, and an
 * UNSUBSCRIBE of a filter completes after a SUBSCRIBE of the same filter sent right behind it
 * (moscajs/aedes#469): the SUBACK comes, the subscription is gone, and the site's answers never
 * arrive. One execution ending on a site as the next one starts there sends exactly that pair, in
 * one write.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { DevicePayloadStats } from '../mqtt/device-payload-stats.js';
import {
  MAX_PAYLOAD_BYTES,
  PHASES,
  connectedFilter,
  keepaliveTopic,
  parseDeviceTopic,
  parseJsonPayload,
  parseNotification,
  parseRpcOut,
  rpcInTopic,
  rpcOutFilter,
  serialTopic,
  type ErrorInfo,
  type RpcOutMessage,
} from '../protocol/index.js';

export type RpcOutcome =
  { ok: true; result: unknown } | { ok: false; error: ErrorInfo } | { ok: false; timeout: true };

export interface SiteListener {
  /** Progress or failure reported by the device for some execution. */
  onDeviceEvent(msg: Extract<RpcOutMessage, { kind: 'progress' | 'failed' }>): void;
  /** The site's GX is (again) connected. */
  onSiteOnline(): void;
  /** A product of the site (`<service>/<instance>`) is (again) on the bus. */
  onDeviceOnline(localDevice: string): void;
}

interface SiteWatch {
  listeners: Set<SiteListener>;
  /** The site's subscriptions are in place (settles after any unsubscribe still in flight). */
  ready: Promise<void>;
  keepalive: NodeJS.Timeout;
  /** Furthest progress seen per execution (phase index, percent): to count reports that go back. */
  furthest: Map<string, { phase: number; progress: number }>;
}

/** Executions per supervised site whose progress is followed for the out-of-order count. */
const MAX_TRACKED_EXECUTIONS_PER_SITE = 256;

function siteFilters(portalId: string): string[] {
  return [rpcOutFilter(portalId), serialTopic(portalId), connectedFilter(portalId)];
}

/** Venus keeps a site alive 60 s after a keepalive; refresh well within that. */
export const KEEPALIVE_INTERVAL_MS = 30_000;
const SUPPRESS_REPUBLISH = JSON.stringify({ 'keepalive-options': ['suppress-republish'] });

export class DeviceLink {
  private readonly sites = new Map<string, SiteWatch>();
  /** Sites no longer watched whose UNSUBSCRIBE is not acknowledged yet: a new watch subscribes after it. */
  private readonly leaving = new Map<string, Promise<void>>();
  private readonly pending = new Map<string, (msg: RpcOutMessage) => void>();
  private counter = 0;
  private readonly idBase: string;

  constructor(
    private readonly mqtt: MqttClient,
    private readonly logger: Logger,
    private readonly stats: DevicePayloadStats = new DevicePayloadStats(),
  ) {
    this.idBase = `w${Math.random().toString(36).slice(2, 8)}`;
    mqtt.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  /** Starts supervising a site; resolves once the subscriptions are in place. Returns the release function. */
  async watch(portalId: string, listener: SiteListener): Promise<() => void> {
    let w = this.sites.get(portalId);
    if (!w) {
      const subscribe = () =>
        this.mqtt.subscribeAsync(siteFilters(portalId), { qos: 1 }).then(() => undefined);
      const left = this.leaving.get(portalId);
      const ready = left ? left.then(subscribe) : subscribe();
      const keepalive = setInterval(() => this.keepalive(portalId), KEEPALIVE_INTERVAL_MS);
      keepalive.unref();
      const created: SiteWatch = { listeners: new Set(), ready, keepalive, furthest: new Map() };
      // A failed subscribe (the connection closed first) is not kept: the next watch tries again.
      ready.catch(() => {
        if (this.sites.get(portalId) !== created) return;
        this.sites.delete(portalId);
        clearInterval(keepalive);
      });
      w = created;
      this.sites.set(portalId, w);
      this.keepalive(portalId);
    }
    w.listeners.add(listener);
    await w.ready;
    const watch = w;
    return () => {
      watch.listeners.delete(listener);
      if (watch.listeners.size === 0 && this.sites.get(portalId) === watch) {
        this.sites.delete(portalId);
        clearInterval(watch.keepalive);
        this.unsubscribeAfter(portalId, watch.ready);
      }
    };
  }

  /** Unsubscribes a site once `subscribed` settled; a later watch of the site subscribes after that. */
  private unsubscribeAfter(portalId: string, subscribed: Promise<void>): void {
    const left = subscribed
      .catch(() => undefined)
      .then(() => (this.mqtt.connected ? this.mqtt.unsubscribeAsync(siteFilters(portalId)) : undefined))
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        if (this.leaving.get(portalId) === left) this.leaving.delete(portalId);
      });
    this.leaving.set(portalId, left);
  }

  /**
   * Calls a method on a site; the site must be watched so its answers are subscribed.
   *
   * A request whose caller gave up (its `timeoutMs` ran out) never reaches the device afterwards: an
   * install nobody waits for any more would start an update nobody supervises. mqtt.js keeps QoS 1
   * publishes made while disconnected, and those not acknowledged when the connection dropped, and
   * sends them after the reconnect, however late: a request still unacknowledged at its deadline is
   * withdrawn from mqtt.js' store.
   */
  call(portalId: string, method: string, params: unknown, timeoutMs: number): Promise<RpcOutcome> {
    const rpcId = `${this.idBase}-${(this.counter++).toString(36)}`;
    return new Promise<RpcOutcome>((resolve) => {
      let gaveUp = false;
      /** The request's message id while the broker has not acknowledged it. */
      let unacked: number | null = null;
      const timer = setTimeout(() => {
        gaveUp = true;
        this.pending.delete(rpcId);
        if (unacked !== null) {
          this.mqtt.removeOutgoingMessage(unacked);
          this.logger.info({ portalId, method, rpcId }, 'rpc request withdrawn unacknowledged: it will not be sent again');
        }
        resolve({ ok: false, timeout: true });
      }, timeoutMs);
      this.pending.set(rpcId, (msg) => {
        if (msg.kind !== 'result' && msg.kind !== 'error') return;
        clearTimeout(timer);
        this.pending.delete(rpcId);
        resolve(msg.kind === 'result' ? { ok: true, result: msg.result } : { ok: false, error: msg.error });
      });
      let settled = false;
      const before = this.mqtt.getLastMessageId();
      this.mqtt.publish(rpcInTopic(portalId, rpcId), JSON.stringify({ method, params }), { qos: 1 }, (err) => {
        settled = true;
        unacked = null;
        if (err && !gaveUp) this.logger.warn({ err, portalId, method }, 'rpc publish failed');
      });
      // The id is taken at once (sent, or stored while disconnected), unless mqtt.js is replaying its
      // store after a reconnect: the request then leaves with that replay, moments later, and cannot
      // be withdrawn.
      const id = this.mqtt.getLastMessageId();
      if (!settled && id !== before) unacked = id;
    });
  }

  /** Sites currently supervised by this process. */
  watchedSites(): number {
    return this.sites.size;
  }

  close(): void {
    for (const w of this.sites.values()) clearInterval(w.keepalive);
    this.sites.clear();
  }

  private keepalive(portalId: string): void {
    if (this.mqtt.connected) this.mqtt.publish(keepaliveTopic(portalId), SUPPRESS_REPUBLISH, { qos: 0 });
  }

  /** Never throws: an exception here would surface inside mqtt.js's packet handling. */
  private onMessage(topic: string, payload: Buffer): void {
    try {
      this.route(topic, payload);
    } catch (err) {
      this.logger.error({ err, topic, bytes: payload.length }, 'device message handling failed');
    }
  }

  private route(topic: string, payload: Buffer): void {
    const t = parseDeviceTopic(topic);
    if (!t) return;
    const w = this.sites.get(t.portalId);
    if (t.kind === 'N') {
      if (!w) return;
      const p = t.path;
      if (p.length === 3 && p[0] === 'system' && p[1] === '0' && p[2] === 'Serial') {
        // A non-null serial means the GX is connected.
        const n = parseNotification(payload);
        if (n && n.value !== null) for (const l of w.listeners) l.onSiteOnline();
      } else if (p.length === 3 && p[2] === 'Connected') {
        // 1 when the product is on the bus; 0, or an empty payload when its service is gone.
        const n = parseNotification(payload);
        if (n && n.value === 1) for (const l of w.listeners) l.onDeviceOnline(`${p[0]}/${p[1]}`);
      }
      return;
    }
    if (t.kind !== 'P' || t.direction !== 'out') return;
    const fields = { portalId: t.portalId, topic, bytes: payload.length };
    if (payload.length > MAX_PAYLOAD_BYTES) {
      this.stats.drop('device-link', 'oversize', this.logger, fields, 'dropped oversize RPC message');
      return;
    }
    const json = parseJsonPayload(payload);
    if (json === null) {
      this.stats.drop('device-link', 'malformed', this.logger, fields, 'dropped malformed RPC message');
      return;
    }
    const msg = parseRpcOut(json);
    if (!msg) {
      this.stats.drop('device-link', 'invalid', this.logger, fields, 'dropped invalid RPC message');
      return;
    }
    const waiter = this.pending.get(t.rpcId);
    if (waiter) waiter(msg);
    if ((msg.kind === 'progress' || msg.kind === 'failed') && w) {
      if (msg.kind === 'progress') this.noteProgress(w, msg, fields);
      for (const l of w.listeners) l.onDeviceEvent(msg);
    }
  }

  /**
   * Counts a progress report that goes back behind one already seen for its execution. It is still
   * handed on: the state machine knows the execution's state (and a retried attempt legitimately
   * starts over) and ignores stale reports itself.
   */
  private noteProgress(
    w: SiteWatch,
    msg: Extract<RpcOutMessage, { kind: 'progress' }>,
    fields: Record<string, unknown>,
  ): void {
    const phase = PHASES.indexOf(msg.phase);
    const seen = w.furthest.get(msg.executionId);
    if (seen && (phase < seen.phase || (phase === seen.phase && msg.progress < seen.progress))) {
      this.stats.drop(
        'device-link',
        'out-of-order',
        this.logger,
        { ...fields, executionId: msg.executionId, phase: msg.phase, progress: msg.progress },
        'progress older than already reported',
      );
      return;
    }
    // Bounded: a site runs a few executions at once; one that invents execution ids is not tracked further.
    if (seen || w.furthest.size < MAX_TRACKED_EXECUTIONS_PER_SITE) {
      w.furthest.set(msg.executionId, { phase, progress: msg.progress });
    }
  }
}
