/**
 * The portal's one MQTT-over-WebSocket connection: short-lived read-only credentials from
 * `POST /api/mqtt-credentials`, a `web-<random>` client id, subscriptions that views open and close,
 * and a state for the header (live / reconnecting / offline).
 *
 * Credentials expire (the broker closes the connection when they do), so they are renewed before
 * that: a second client connects with the new ones and takes over the subscriptions, and only then
 * is the old one closed ("make before break"), so no message falls between the two. A broker that
 * refuses the connection (CONNACK 4 "bad user name or password", 5 "not authorized", 2 "identifier
 * rejected"…) gets fresh credentials the same way, with backoff: mqtt.js itself would not retry
 * after a refusal.
 */
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import { parseJsonPayload, topicMatches } from '../../src/protocol/index.js';
import type { MqttCredentials } from './api-client.js';

/** What the header shows. */
export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'offline';

/** Opens an MQTT client; injectable so tests can hand in fakes. */
export type ConnectFn = (url: string, options: IClientOptions) => MqttClient;

/** Options of {@link LiveConnection}. */
export interface LiveConnectionOptions {
  /** Fetches fresh credentials (`POST /api/mqtt-credentials`). */
  credentials(): Promise<MqttCredentials>;
  connect?: ConnectFn;
  /** Milliseconds without a connection after which the state reads `offline` instead of `reconnecting`. */
  offlineAfterMs?: number;
  /** Milliseconds between mqtt.js's own reconnect attempts. */
  reconnectPeriodMs?: number;
  /** Longest wait between attempts after refused credentials or a failed credentials request. */
  maxRetryDelayMs?: number;
  /** Receives errors thrown by message handlers, which must not break the other views. */
  onHandlerError?(err: unknown): void;
}

/** A view's subscription; close it when the view goes away. */
export interface LiveSubscription {
  close(): void;
}

/**
 * Where a message came from: `retained` is set on the copies the broker sends for a SUBSCRIBE (the
 * state it held when it read them), not on messages published since; `subscription` counts the
 * SUBSCRIBEs sent for this view (one per connection, and again after each reconnect).
 */
export interface MessageOrigin {
  retained: boolean;
  subscription: number;
}

/** Called for every message on a subscribed filter with the parsed JSON payload. */
export type MessageHandler = (topic: string, payload: unknown, origin: MessageOrigin) => void;

interface Entry {
  filter: string;
  onMessage: MessageHandler;
  /** SUBSCRIBEs sent for this entry so far ({@link MessageOrigin.subscription}). */
  subscription: number;
  /** Called each time the broker acknowledged the filter on a (new) connection. */
  onActive?: () => void;
}

/**
 * CONNACK refusals (MQTT 3.1.1 §3.2.2.3: 1 protocol, 2 identifier, 3 server unavailable, 4 bad user
 * name or password, 5 not authorized; their v5 counterparts). After any of them mqtt.js stops
 * reconnecting on its own, so the portal tries again with fresh credentials, which also bring the
 * current client-id prefix, with backoff.
 */
const CONNACK_REFUSALS = new Set([1, 2, 3, 4, 5, 132, 133, 134, 135, 136]);
/** Clock differences below this are taken as the `Date` header's rounding, not as skew. */
const MAX_CLOCK_SKEW_MS = 5000;
/** SUBACK return code for a refused filter (MQTT 3.1.1 §3.9.3). */
const SUBACK_FAILURE = 128;

/** One managed MQTT connection shared by every view. */
export class LiveConnection {
  readonly #opts: Required<Omit<LiveConnectionOptions, 'onHandlerError'>> &
    Pick<LiveConnectionOptions, 'onHandlerError'>;
  readonly #entries = new Set<Entry>();
  /** Filter → number of entries using it. */
  readonly #filters = new Map<string, number>();
  readonly #stateListeners = new Set<(state: LiveState) => void>();
  #client: MqttClient | null = null;
  /** The client being replaced; it serves until the new one is connected. */
  #retiring: MqttClient | null = null;
  #state: LiveState = 'connecting';
  #downSince: number | null = null;
  #failures = 0;
  #renewTimer: ReturnType<typeof setTimeout> | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #opening = false;
  #closed = false;

  constructor(options: LiveConnectionOptions) {
    this.#opts = {
      connect: (url, o) => mqtt.connect(url, o),
      offlineAfterMs: 15_000,
      reconnectPeriodMs: 2000,
      maxRetryDelayMs: 30_000,
      ...options,
    };
  }

  /** The current state. */
  get state(): LiveState {
    return this.#state;
  }

  /** Connects; resolves once the first credentials request is done (not when connected). */
  start(): Promise<void> {
    return this.#open();
  }

  /** Calls `listener` now and on every state change; returns the unsubscribe function. */
  onState(listener: (state: LiveState) => void): () => void {
    this.#stateListeners.add(listener);
    listener(this.#state);
    return () => this.#stateListeners.delete(listener);
  }

  /**
   * Subscribes to `filter`. Every new subscription sends a SUBSCRIBE, also when the filter is already
   * subscribed, because that makes the broker send its retained messages again
   * ([MQTT-3.8.4-3]): each view gets the current state, not only the changes after it opened.
   * `onActive` runs after each SUBACK (now and after every reconnect); views fetch what they may
   * have missed from there.
   */
  subscribe(filter: string, onMessage: MessageHandler, onActive?: () => void): LiveSubscription {
    const entry: Entry = { filter, onMessage, onActive, subscription: 0 };
    this.#entries.add(entry);
    this.#filters.set(filter, (this.#filters.get(filter) ?? 0) + 1);
    const client = this.#client;
    if (client?.connected) this.#subscribeFilters(client, [filter], [entry]);
    return {
      close: () => {
        if (!this.#entries.delete(entry)) return;
        const left = (this.#filters.get(filter) ?? 1) - 1;
        if (left > 0) {
          this.#filters.set(filter, left);
          return;
        }
        this.#filters.delete(filter);
        if (this.#client?.connected) this.#client.unsubscribe(filter);
      },
    };
  }

  /** Ends the connection for good (sign out). */
  close(): void {
    this.#closed = true;
    this.#clearTimers();
    this.#retiring?.end(true);
    this.#client?.end(true);
    this.#retiring = null;
    this.#client = null;
    this.#entries.clear();
    this.#filters.clear();
    this.#setState('offline');
  }

  /** Fetches credentials and connects a new client; the previous one serves until then. */
  async #open(): Promise<void> {
    if (this.#closed || this.#opening) return;
    this.#opening = true;
    this.#clearTimers();
    let creds: MqttCredentials;
    try {
      creds = await this.#opts.credentials();
    } catch {
      this.#opening = false;
      if (!this.#client?.connected) this.#markDown();
      this.#retryLater();
      return;
    }
    this.#opening = false;
    if (this.#closed) return;
    const previous = this.#client;
    this.#client = this.#connect(creds);
    if (previous) {
      if (previous.connected) {
        this.#retiring?.end(true);
        this.#retiring = previous;
      } else {
        previous.end(true);
      }
    }
    this.#scheduleRenewal(creds);
  }

  #connect(creds: MqttCredentials): MqttClient {
    const client = this.#opts.connect(browserUrl(creds.url), {
      clientId: `${creds.clientIdPrefix ?? 'web-'}${randomId()}`,
      username: creds.username,
      password: creds.password,
      protocolVersion: 4,
      clean: true,
      // Subscriptions are ours to restore: #subscribeFilters also tells the views when they are active.
      resubscribe: false,
      reconnectPeriod: this.#opts.reconnectPeriodMs,
      connectTimeout: 10_000,
      keepalive: 30,
    });
    const current = () => client === this.#client;
    client.on('connect', () => {
      if (!current()) {
        client.end(true);
        return;
      }
      this.#failures = 0;
      this.#downSince = null;
      this.#setState('live');
      if (this.#retiring) {
        this.#retiring.end(true);
        this.#retiring = null;
      }
      this.#subscribeFilters(client, [...this.#filters.keys()], [...this.#entries]);
    });
    client.on('close', () => {
      if (client === this.#retiring) {
        this.#retiring = null;
        if (!this.#client?.connected) this.#markDown();
      } else if (current()) {
        this.#markDown();
      }
    });
    client.on('reconnect', () => {
      if (current()) this.#markDown();
    });
    client.on('error', (err: Error & { code?: unknown }) => {
      if (current() && typeof err.code === 'number' && CONNACK_REFUSALS.has(err.code)) {
        this.#markDown();
        this.#retryLater();
      }
    });
    client.on('message', (topic, payload, packet) => {
      if (client !== this.#client && client !== this.#retiring) return;
      this.#dispatch(topic, payload, !!packet?.retain);
    });
    return client;
  }

  #subscribeFilters(client: MqttClient, filters: string[], entries: Entry[]): void {
    if (filters.length === 0) return;
    // QoS 0: a clean session gains nothing from QoS 1 (nothing is redelivered to a new connection),
    // while the broker would keep every status message in flight per page until it is acknowledged.
    // What a dropped connection missed comes back as retained state, and log lines from the API.
    const map = Object.fromEntries(filters.map((f) => [f, { qos: 0 as const }]));
    for (const e of entries) e.subscription++;
    client.subscribe(map, (err, granted) => {
      if (err || client !== this.#client) return;
      const ok = new Set((granted ?? []).filter((g) => g.qos !== SUBACK_FAILURE).map((g) => g.topic));
      for (const e of entries) {
        if (ok.has(e.filter) && this.#entries.has(e)) this.#safely(() => e.onActive?.());
      }
    });
  }

  #dispatch(topic: string, payload: Uint8Array, retained: boolean): void {
    const body = parseJsonPayload(payload);
    if (body === null) return;
    for (const e of [...this.#entries]) {
      if (topicMatches(e.filter, topic))
        this.#safely(() => e.onMessage(topic, body, { retained, subscription: e.subscription }));
    }
  }

  #safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#opts.onHandlerError?.(err);
    }
  }

  /** Renews the credentials a little before they expire (a fifth of their lifetime, at most a minute). */
  #scheduleRenewal(creds: MqttCredentials): void {
    const expires = Date.parse(creds.expiresAt);
    if (!Number.isFinite(expires)) return;
    const now = Date.now();
    // expiresAt is the server's time. The Date header has whole seconds only, so it is used only when
    // the clocks differ by more than that rounding could explain.
    const skew =
      creds.serverTime !== undefined && Math.abs(creds.serverTime - now) > MAX_CLOCK_SKEW_MS
        ? creds.serverTime - now
        : 0;
    const ttl = expires - (now + skew);
    const margin = Math.min(60_000, Math.max(1000, ttl / 5));
    this.#renewTimer = setTimeout(() => void this.#open(), Math.max(1000, ttl - margin));
  }

  /** Tries again with exponential backoff: 1 s, 2 s, 4 s … up to the maximum. */
  #retryLater(): void {
    if (this.#closed) return;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    const delay = Math.min(this.#opts.maxRetryDelayMs, 1000 * 2 ** this.#failures);
    this.#failures += 1;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.#open();
    }, delay);
  }

  #markDown(): void {
    const now = Date.now();
    this.#downSince ??= now;
    const long = now - this.#downSince >= this.#opts.offlineAfterMs;
    this.#setState(long || !navigator.onLine ? 'offline' : 'reconnecting');
  }

  #setState(state: LiveState): void {
    if (state === this.#state) return;
    this.#state = state;
    for (const l of [...this.#stateListeners]) this.#safely(() => l(state));
  }

  #clearTimers(): void {
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#renewTimer = null;
    this.#retryTimer = null;
  }
}

/** A page served over https may not open a plain ws:// socket (mixed content); ask for wss:// then. */
function browserUrl(url: string): string {
  return location.protocol === 'https:' && url.startsWith('ws:') ? `wss:${url.slice(3)}` : url;
}

/** 16 hex digits from the browser's CSPRNG: client ids must not collide, or the broker drops one. */
function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join(
    '',
  );
}
