/**
 * What the broker refused and dropped, counted in one place: refused CONNECTs by reason, refused
 * PUBLISHes and SUBSCRIBEs, connections closed for oversize or malformed packets, browser sessions
 * ended by token expiry. In-process counters only (no I/O): a metrics exporter reads {@link
 * BrokerStats.snapshot}; logs carry the details of each event.
 */
import { PRINCIPAL_KINDS, type PrincipalKind } from './acl.js';

/** Why a CONNECT was refused; each maps to one step of the connect flow in broker.ts. */
export const CONNECT_REFUSALS = [
  'rate-limited',
  'anonymous',
  'bad-credentials',
  'authenticator-failed',
  'client-id',
  'token-expired',
  'will',
] as const;
export type ConnectRefusal = (typeof CONNECT_REFUSALS)[number];

/** Why a PUBLISH was acknowledged and dropped. */
export const PUBLISH_REFUSALS = ['topic', 'payload-too-large', 'not-authenticated'] as const;
export type PublishRefusal = (typeof PUBLISH_REFUSALS)[number];

/** Why a connection was closed by the broker for what it sent. */
export const CONNECTION_VIOLATIONS = ['packet-too-large', 'malformed'] as const;
export type ConnectionViolation = (typeof CONNECTION_VIOLATIONS)[number];

/** A copy of the counters at one moment. */
export interface BrokerStatsSnapshot {
  connectsAccepted: Record<PrincipalKind, number>;
  connectsRefused: Record<ConnectRefusal, number>;
  /**
   * Refused CONNECTs with wrong credentials whose username is a portal id: someone trying a site's
   * secret (or a site whose secret was re-keyed).
   */
  siteAuthFailures: number;
  publishesRefused: Record<PublishRefusal, number>;
  subscriptionsRefused: number;
  /** Publishes delivered without being stored as retained: the client may not retain that topic. */
  retainStripped: number;
  connectionsClosed: Record<ConnectionViolation, number>;
  browserTokenExpiries: number;
}

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

/** Counters of one broker instance. */
export class BrokerStats {
  readonly #s: BrokerStatsSnapshot = {
    connectsAccepted: zeros(PRINCIPAL_KINDS),
    connectsRefused: zeros(CONNECT_REFUSALS),
    siteAuthFailures: 0,
    publishesRefused: zeros(PUBLISH_REFUSALS),
    subscriptionsRefused: 0,
    retainStripped: 0,
    connectionsClosed: zeros(CONNECTION_VIOLATIONS),
    browserTokenExpiries: 0,
  };

  connectAccepted(kind: PrincipalKind): void {
    this.#s.connectsAccepted[kind]++;
  }

  /** `siteUsername`: the refused client claimed to be a site (its username is a portal id). */
  connectRefused(reason: ConnectRefusal, siteUsername = false): void {
    this.#s.connectsRefused[reason]++;
    if (reason === 'bad-credentials' && siteUsername) this.#s.siteAuthFailures++;
  }

  publishRefused(reason: PublishRefusal): void {
    this.#s.publishesRefused[reason]++;
  }

  subscriptionRefused(): void {
    this.#s.subscriptionsRefused++;
  }

  retainStripped(): void {
    this.#s.retainStripped++;
  }

  connectionClosed(violation: ConnectionViolation): void {
    this.#s.connectionsClosed[violation]++;
  }

  browserTokenExpired(): void {
    this.#s.browserTokenExpiries++;
  }

  snapshot(): BrokerStatsSnapshot {
    return structuredClone(this.#s);
  }
}
