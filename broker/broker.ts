/**
 * The embedded MQTT broker: aedes with fleetflash's authentication, topic ACL (`acl.ts`) and limits,
 * over TCP for devices and workers and over WebSocket for browsers.
 *
 * Before any of it, every connection's bytes pass a packet-size guard (`packet-size-guard.ts`): a packet
 * announced larger than `maxPacketBytes` closes the connection before it is buffered.
 *
 * The CONNECT flow, in order (each step refuses with a CONNACK return code, MQTT 3.1.1 §3.2.2.3):
 * 1. rate limit per remote address → 3 (server unavailable);
 * 2. no username → 5 (not authorized);
 * 3. `options.authenticate` says no → 4 (bad user name or password); it fails → 3;
 * 4. client id outside the principal's namespace → 2 (identifier rejected);
 * 5. browser token already expired → 4;
 * 6. will message the principal could not publish itself → 5.
 */
import type { EventEmitter } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TlsOptions } from 'node:tls';
import type { Aedes, AedesOptions, Client, ConnectPacket } from 'aedes';
import mqemitter from 'mqemitter';
import type { Logger } from 'pino';
import { isPortalId } from '../src/protocol/ids.js';
import {
  canPublish,
  canRetain,
  canSubscribe,
  clientIdAllowed,
  isTopicName,
  PRINCIPAL_KINDS,
  type Principal,
  type PrincipalKind,
} from './acl.js';
import {
  BrokerStats,
  type BrokerStatsSnapshot,
  type ConnectRefusal,
  type PublishRefusal,
} from './broker-stats.js';
import { ConnectRateLimiter } from './connect-rate-limiter.js';
import { ExpiryTimers } from './expiry-timers.js';
import { GuardedAedes, type DeliverFunc } from './guarded-aedes.js';
import { dedupeOverlapsOnly } from './overlap-dedupe.js';
import { guardSocket, PacketSizeGuard, type FrameViolation } from './packet-size-guard.js';
import { forgetConnectPacket, ownWillPayload, useParserBytes } from './parser-buffer.js';
import { indexedMemoryPersistence, retainedMessageCount } from './retained-index.js';
import { useSubscriptionTrie } from './subscription-trie.js';
import { BrokerTransports } from './transports.js';
import { useWholePacketWrites } from '../src/mqtt/whole-packet-writes.js';

/** Default for {@link BrokerOptions.maxPayloadBytes}. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024;
/**
 * Default for {@link BrokerOptions.maxPacketBytes}: room for the largest allowed payload plus topic and
 * headers, and the same as the WebSocket message cap, so no transport buffers more than this.
 */
export const DEFAULT_MAX_PACKET_BYTES = 256 * 1024;
/** Default path of MQTT over WebSocket. */
export const DEFAULT_WS_PATH = '/mqtt';

/** What the authenticator gets from a CONNECT. */
export interface AuthenticateRequest {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  remoteAddress: string | undefined;
}

/** Options of {@link createBroker}. */
export interface BrokerOptions {
  /** Resolves credentials to a principal, or null to refuse. Must not throw for bad input. */
  authenticate: (req: AuthenticateRequest) => Promise<Principal | null>;
  /** The broker's logger: pass a child bound to the component (`{ component: 'broker' }`). */
  logger: Logger;
  /** Max CONNECT attempts per remote address per minute before refusing (0 = off). Default 0. */
  connectRatePerMinute?: number;
  /** Publishes larger than this from non-service clients are dropped. Default 64 KiB. */
  maxPayloadBytes?: number;
  /**
   * Any client (the service included) announcing a packet larger than this is disconnected before the
   * packet is buffered. Default {@link DEFAULT_MAX_PACKET_BYTES}.
   */
  maxPacketBytes?: number;
  /**
   * aedes persistence (retained messages, QoS>0 queues, sessions). Default: aedes-persistence in memory.
   * For several api,broker instances pass aedes-persistence-redis here and mqemitter-redis as `mq`.
   * A persistence passed in is the caller's to destroy after {@link EmbeddedBroker.close}.
   */
  persistence?: AedesOptions['persistence'];
  /** aedes message emitter, shared between broker instances when clustered. Closed by close(). */
  mq?: AedesOptions['mq'];
  /** Broker id, unique per instance in a cluster. Default: a random UUID. */
  id?: string;
}

/** A running broker. */
export interface EmbeddedBroker {
  /** The aedes instance: `aedes.publish()` publishes as the server, bypassing the ACL. */
  readonly aedes: Aedes;
  /** Listens for MQTT over TCP; resolves with the bound port (`port` 0 picks a free one). */
  listen(port: number, host?: string): Promise<number>;
  /** Listens for MQTT over TLS with `tls` (key, cert…); resolves with the bound port. */
  listenTls(port: number, host: string | undefined, tls: TlsOptions): Promise<number>;
  /** Serves MQTT over WebSocket at `path` (default `/mqtt`) on an existing HTTP(S) server; other paths untouched. */
  attachWebSocket(server: HttpServer | HttpsServer, path?: string): void;
  /** Counters of what was refused and dropped since start. */
  stats(): BrokerStatsSnapshot;
  /** Clients that completed CONNECT and are still connected. */
  connectedClients(): number;
  /** Connected clients per principal kind. */
  clientsByKind(): Record<PrincipalKind, number>;
  /** Retained messages held in this process's memory; null when a shared persistence (Redis) holds them. */
  retainedMessages(): number | null;
  /**
   * Subscribes code in this process to `filters` without a client connection: `onMessage` gets every
   * message routed to them after the call (published here, or in a cluster through the shared emitter),
   * then each retained message they match, as a SUBSCRIBE would. No ACL: this is the service itself.
   * Resolves once the retained messages were handed over, with the unsubscribe.
   */
  subscribe(filters: readonly string[], onMessage: LocalMessageHandler): Promise<() => Promise<void>>;
  /** Closes the listeners, every client connection and aedes. Idempotent. */
  close(): Promise<void>;
}

/** Gets a message for {@link EmbeddedBroker.subscribe}; must not throw. */
export type LocalMessageHandler = (topic: string, payload: Buffer) => void;

/** CONNACK return codes, MQTT 3.1.1 Table 3.1 (aedes' `AuthErrorCode` is a const enum, unusable here). */
const ConnackCode = {
  IDENTIFIER_REJECTED: 2,
  SERVER_UNAVAILABLE: 3,
  BAD_USERNAME_OR_PASSWORD: 4,
  NOT_AUTHORIZED: 5,
} as const;
type ConnackCode = (typeof ConnackCode)[keyof typeof ConnackCode];

type AuthenticateHook = NonNullable<AedesOptions['authenticate']>;
/** aedes' table of a client's subscriptions (lib/client.js), which its typings do not declare. */
type ClientSubscriptions = { subscriptions: Record<string, { func: DeliverFunc } | undefined> };
type AuthenticateError = Parameters<Parameters<AuthenticateHook>[3]>[0];
type Will = NonNullable<ConnectPacket['will']>;

/**
 * The in-process message emitter: mqemitter with its subscribers in a SubscriptionTrie (see
 * subscription-trie.ts: qlobber's answers in a fraction of its memory per site). Another mqemitter
 * than the one expected keeps its own matcher (a unit test says when that happens).
 */
function localEmitter(): NonNullable<AedesOptions['mq']> {
  const mq = mqemitter({ concurrency: 0, matchEmptyLevels: true });
  useSubscriptionTrie(mq);
  return mq;
}

/** Creates and starts a broker; call `listen` and/or `attachWebSocket` to accept clients. */
export async function createBroker(options: BrokerOptions): Promise<EmbeddedBroker> {
  const settings = {
    connectRatePerMinute: 0,
    maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
    maxPacketBytes: DEFAULT_MAX_PACKET_BYTES,
    ...options,
  };
  if (!Number.isInteger(settings.maxPayloadBytes) || settings.maxPayloadBytes <= 0) {
    throw new RangeError(`maxPayloadBytes must be a positive integer, got ${settings.maxPayloadBytes}`);
  }
  if (!Number.isInteger(settings.maxPacketBytes) || settings.maxPacketBytes < 1024) {
    throw new RangeError(`maxPacketBytes must be an integer >= 1024, got ${settings.maxPacketBytes}`);
  }
  // One write per packet to every client (see whole-packet-writes.ts).
  useWholePacketWrites();
  const log = settings.logger;
  const stats = new BrokerStats();
  const limiter = new ConnectRateLimiter({ perMinute: settings.connectRatePerMinute });
  const principals = new WeakMap<Client, Principal>();
  /** Will messages from CONNECT, kept for the authenticate step (aedes only passes them to preConnect). */
  const wills = new WeakMap<Client, Will>();
  /** Remote address per connection stream: a WebSocket stream has none of its own. */
  const remoteAddresses = new WeakMap<object, string | undefined>();
  const registered = new Set<Client>();
  const expiries = new ExpiryTimers<Client>();

  // The in-memory default with retained messages indexed by topic level: see retained-index.ts.
  const persistence = settings.persistence ?? indexedMemoryPersistence();
  // The in-memory emitter without aedes' default concurrency limit (100 deliveries in flight, the rest
  // queued). When that queue is long and its messages complete synchronously (no subscriber, like a
  // GX heartbeat), mqemitter releases each into the next on one stack, and the broker died of "Maximum
  // call stack size exceeded" in the 10,000-site benchmark (mcollina/mqemitter#204, open). Unbounded,
  // nothing is ever queued there; aedes still reads each client's packets in bounded batches, and the
  // clustered emitter (mqemitter-redis) is unbounded already.
  const mq = settings.mq ?? localEmitter();
  const aedes = new GuardedAedes({ persistence, mq, id: settings.id });

  /** Why `principal` may not publish this, or null when it may. */
  function publishRefusal(
    principal: Principal,
    topic: string,
    payload: Buffer | string,
  ): { reason: PublishRefusal; text: string } | null {
    if (!canPublish(principal, topic)) return { reason: 'topic', text: 'topic not allowed' };
    if (principal.kind !== 'service' && Buffer.byteLength(payload) > settings.maxPayloadBytes) {
      return { reason: 'payload-too-large', text: `payload over ${settings.maxPayloadBytes} bytes` };
    }
    return null;
  }

  aedes.preConnect = (client, packet, callback) => {
    dedupeOverlapsOnly(client);
    forgetConnectPacket(client);
    if (packet.will) {
      ownWillPayload(packet.will);
      wills.set(client, packet.will);
    }
    callback(null, true);
  };

  aedes.authenticate = (client, username, password, done) => {
    const remoteAddress = remoteAddresses.get(client.conn);
    const refuse = (
      returnCode: ConnackCode,
      counted: ConnectRefusal,
      reason: string,
      principal?: Principal,
    ) => {
      stats.connectRefused(counted, isPortalId(username));
      log.warn(
        { clientId: client.id, username, kind: principal?.kind, remoteAddress, returnCode, reason },
        'connection refused',
      );
      const error = Object.assign(new Error(`connection refused: ${reason}`), { returnCode });
      done(error as AuthenticateError, false);
    };
    if (!limiter.take(remoteAddress ?? 'unknown')) {
      return refuse(
        ConnackCode.SERVER_UNAVAILABLE,
        'rate-limited',
        `more than ${settings.connectRatePerMinute} connects per minute`,
      );
    }
    if (!username) return refuse(ConnackCode.NOT_AUTHORIZED, 'anonymous', 'anonymous');

    const accept = (principal: Principal | null) => {
      if (!principal)
        return refuse(ConnackCode.BAD_USERNAME_OR_PASSWORD, 'bad-credentials', 'bad credentials');
      if (!clientIdAllowed(principal, client.id)) {
        return refuse(
          ConnackCode.IDENTIFIER_REJECTED,
          'client-id',
          'client id not allowed for this principal',
          principal,
        );
      }
      if (principal.kind === 'browser' && principal.expiresAt <= Date.now()) {
        return refuse(ConnackCode.BAD_USERNAME_OR_PASSWORD, 'token-expired', 'token expired', principal);
      }
      // [MQTT-3.1.2-8] the server publishes the will on its own later, so it is authorized now, while
      // the client can still be told: the same rule as its own publishes.
      const will = wills.get(client);
      const willRefusal = will ? publishRefusal(principal, will.topic, will.payload) : null;
      if (will && willRefusal) {
        return refuse(
          ConnackCode.NOT_AUTHORIZED,
          'will',
          `will on ${will.topic}: ${willRefusal.text}`,
          principal,
        );
      }
      principals.set(client, principal);
      stats.connectAccepted(principal.kind);
      done(null, true);
    };
    settings
      .authenticate({ clientId: client.id, username, password, remoteAddress })
      .then(accept, (err: unknown) => {
        log.error({ err, clientId: client.id, username }, 'authenticator failed');
        refuse(ConnackCode.SERVER_UNAVAILABLE, 'authenticator-failed', 'authenticator failed');
      })
      .catch((err: unknown) => log.error({ err, clientId: client.id }, 'authentication step failed'));
  };

  aedes.authorizePublish = (client, packet, callback) => {
    const principal = client ? principals.get(client) : undefined;
    let refusal: { reason: PublishRefusal; text: string } | null;
    if (client === null) {
      // A will of a client of a broker that died (aedes' will sweep): vetted at that client's CONNECT.
      refusal =
        isTopicName(packet.topic) && !packet.topic.startsWith('$')
          ? null
          : { reason: 'topic', text: 'topic not allowed' };
    } else {
      refusal = principal
        ? publishRefusal(principal, packet.topic, packet.payload)
        : { reason: 'not-authenticated', text: 'not authenticated' };
    }
    if (refusal) {
      stats.publishRefused(refusal.reason);
      log.warn(
        {
          clientId: client?.id,
          kind: principal?.kind,
          topic: packet.topic,
          qos: packet.qos,
          reason: refusal.text,
        },
        'publish refused',
      );
      // [MQTT-3.3.5-2] acknowledged by its QoS, then dropped; see guarded-aedes.ts.
      aedes.dropPublish(packet);
    } else if (packet.retain && principal && !canRetain(principal, packet.topic)) {
      // Delivered, not stored: aedes stores what is still marked retained when it routes the packet.
      packet.retain = false;
      stats.retainStripped();
      log.debug({ clientId: client?.id, kind: principal.kind, topic: packet.topic }, 'retain flag dropped');
    }
    callback(null);
  };

  aedes.authorizeSubscribe = (client, subscription, callback) => {
    const principal = principals.get(client);
    if (principal && canSubscribe(principal, subscription.topic)) {
      // An UNSUBSCRIBE of this filter in the same read may still be removing it: subscribe after it.
      const existing = (client as unknown as ClientSubscriptions).subscriptions[subscription.topic];
      if (existing) aedes.afterUnsubscribe(existing.func, () => callback(null, subscription));
      else callback(null, subscription);
      return;
    }
    stats.subscriptionRefused();
    log.warn(
      { clientId: client.id, kind: principal?.kind, filter: subscription.topic },
      'subscription refused',
    );
    // A null subscription is granted as 0x80 (failure) in the SUBACK, MQTT 3.1.1 §3.9.3; others in the
    // same SUBSCRIBE still go through and the connection stays open.
    callback(null, null);
  };

  aedes.on('client', (client) => {
    registered.add(client);
    const principal = principals.get(client);
    if (principal?.kind === 'browser') {
      expiries.arm(client, principal.expiresAt, () => {
        stats.browserTokenExpired();
        log.info(
          { clientId: client.id, subject: principal.subject },
          'browser token expired; closing connection',
        );
        client.close();
      });
    }
  });
  aedes.on('clientReady', (client) => {
    log.debug(
      {
        clientId: client.id,
        kind: principals.get(client)?.kind,
        remoteAddress: remoteAddresses.get(client.conn),
      },
      'client connected',
    );
  });
  aedes.on('clientDisconnect', (client) => {
    registered.delete(client);
    expiries.clear(client);
    log.debug({ clientId: client.id, kind: principals.get(client)?.kind }, 'client disconnected');
  });
  aedes.on('keepaliveTimeout', (client) => log.debug({ clientId: client.id }, 'keepalive timeout'));
  aedes.on('clientError', (client, err) => logClientError(log, stats, client, err));
  aedes.on('connectionError', (client, err) => logClientError(log, stats, client, err));
  // Persistence and will-sweep failures; an EventEmitter 'error' without a listener would crash.
  (aedes as EventEmitter).on('error', (err: Error) => log.error({ err }, 'broker error'));

  await aedes.listen();

  /** A connection the packet-size guard closed: counted and logged (one function for every connection). */
  const onFrameViolation = (violation: FrameViolation, conn: Duplex) => {
    stats.connectionClosed(violation.kind);
    const client = (conn as { client?: Client }).client;
    log.warn(
      { clientId: client?.id || undefined, remoteAddress: remoteAddresses.get(conn), ...violation },
      violation.kind === 'packet-too-large'
        ? 'packet too large; connection closed'
        : 'malformed packet; connection closed',
    );
  };
  const transports = new BrokerTransports(
    (stream, remoteAddress, req) => {
      // TCP and TLS sockets are guarded in place; a WebSocket stream (or a socket with data already
      // buffered) through a guard stream.
      const conn =
        stream instanceof net.Socket && guardSocket(stream, settings.maxPacketBytes, onFrameViolation)
          ? stream
          : new PacketSizeGuard(stream, settings.maxPacketBytes, onFrameViolation);
      remoteAddresses.set(conn, remoteAddress);
      useParserBytes(aedes.handle(conn, req));
    },
    (err) => log.error({ err }, 'listener error'),
  );

  let closing: Promise<void> | null = null;

  return {
    aedes,
    listen: (port, host) => transports.listenTcp(port, host),
    listenTls: (port, host, tls) => transports.listenTls(port, host, tls),
    attachWebSocket: (server, path = DEFAULT_WS_PATH) => transports.attachWebSocket(server, path),
    stats: () => stats.snapshot(),
    connectedClients: () => aedes.connectedClients,
    retainedMessages: () => retainedMessageCount(persistence),
    async subscribe(filters, onMessage) {
      const deliver: DeliverFunc = (packet, done) => {
        onMessage(packet.topic, asBuffer(packet.payload));
        done();
      };
      const each = (call: (filter: string, done: () => void) => void) =>
        Promise.all(filters.map((filter) => new Promise<void>((resolve) => call(filter, resolve))));
      await each((filter, done) => aedes.subscribe(filter, deliver, done));
      const retained = (persistence as RetainedSource).createRetainedStreamCombi([...filters]);
      for await (const packet of retained) onMessage(packet.topic, asBuffer(packet.payload));
      return async () => {
        if (closing) return;
        await each((filter, done) => aedes.unsubscribe(filter, deliver, done));
      };
    },
    clientsByKind() {
      const counts = Object.fromEntries(PRINCIPAL_KINDS.map((kind) => [kind, 0])) as Record<
        PrincipalKind,
        number
      >;
      for (const client of registered) {
        // aedes can forget a closed client without 'clientDisconnect' (a cluster takeover of a closed
        // one, aedes.js closeSameClients): such entries are dropped here.
        const kind = principals.get(client)?.kind;
        if (client.closed) registered.delete(client);
        else if (kind) counts[kind]++;
      }
      return counts;
    },
    close() {
      closing ??= (async () => {
        transports.stopAccepting();
        expiries.clearAll();
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        await transports.close();
        log.debug('broker closed');
      })();
      return closing;
    },
  };
}

/** The retained-message reader every aedes persistence has (the in-memory one, aedes-persistence-redis). */
interface RetainedSource {
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string; payload: Buffer | string }>;
}

function asBuffer(payload: Buffer | string): Buffer {
  return typeof payload === 'string' ? Buffer.from(payload) : payload;
}

/** Network errors are routine; protocol violations and limits hit are worth a warning. */
const ROUTINE_ERROR_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED']);
const ROUTINE_ERROR_MESSAGES = new Set(['keep alive timeout', 'connection closed']);

function logClientError(
  log: Logger,
  stats: BrokerStats,
  client: Client,
  err: Error & { code?: string; errorCode?: number },
): void {
  const fields = { clientId: client.id ?? undefined, err };
  // errorCode: a refused CONNECT (aedes closes after the CONNACK), already logged at warn when refused.
  const routine =
    err.errorCode !== undefined ||
    ROUTINE_ERROR_CODES.has(err.code ?? '') ||
    ROUTINE_ERROR_MESSAGES.has(err.message);
  if (routine) {
    log.debug(fields, 'client connection error');
    return;
  }
  // Anything else closed the connection over what the client sent (bad header flags, a wildcard in a
  // PUBLISH topic, a second CONNECT…): a protocol violation, [MQTT-4.8.0-1].
  stats.connectionClosed('malformed');
  log.warn(fields, 'client connection error');
}
