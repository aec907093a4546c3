/**
 * fleetflash's broker rules for an external broker (EMQX, Mosquitto with mosquitto-go-auth): the
 * same authentication (mqtt-auth.ts) and topic ACL (broker/acl.ts) the embedded broker applies,
 * answered to the broker's HTTP calls (api/broker-auth-server.ts speaks their dialects).
 *
 * An external broker asks twice: once when a client connects (username, password, client id), then
 * for each publish, subscription or delivery with the username and client id only. A service or site
 * principal follows from its username; a browser's scope (its jobs, its expiry) is in the token it
 * connected with, so the connect step keeps it in Redis under the client id until the token expires,
 * where every API instance finds it.
 */
import type { Redis } from 'ioredis';
import {
  canPublish,
  canReceive,
  canRetain,
  canSubscribe,
  clientIdAllowed,
  type Principal,
} from '../../broker/acl.js';
import { isPortalId } from '../protocol/index.js';
import type { Keys } from '../store/keys.js';
import type { ConnectAttempt } from './mqtt-auth.js';

export type BrokerAction = 'publish' | 'subscribe' | 'receive';

export interface AccessRequest {
  username: string;
  clientId: string;
  action: BrokerAction;
  /** Topic name (publish, receive) or topic filter (subscribe). */
  topic: string;
  /** A publish that asks to be retained. */
  retain?: boolean;
}

/** Why a request was refused: for the log line and the broker's error text. */
export type Refusal = 'bad-credentials' | 'client-id' | 'expired' | 'unknown-client' | 'not-allowed';

export type Decision<T> = { ok: true; value: T } | { ok: false; reason: Refusal };

type BrowserPrincipal = Extract<Principal, { kind: 'browser' }>;

export class BrokerAuthHook {
  constructor(
    private readonly deps: {
      authenticate: (req: ConnectAttempt) => Promise<Principal | null>;
      serviceUser: string;
      redis: Redis;
      keys: Keys;
      now?: () => number;
    },
  ) {}

  /** A client connecting: its credentials, and the client id its kind may use. */
  async connect(req: { username: string; password: string; clientId: string }): Promise<Decision<Principal>> {
    const principal = await this.deps.authenticate({
      clientId: req.clientId,
      username: req.username,
      password: Buffer.from(req.password, 'utf8'),
      remoteAddress: undefined,
    });
    if (!principal) return { ok: false, reason: 'bad-credentials' };
    if (!clientIdAllowed(principal, req.clientId)) return { ok: false, reason: 'client-id' };
    if (principal.kind === 'browser') {
      const ttl = principal.expiresAt - this.now();
      if (ttl <= 0) return { ok: false, reason: 'expired' };
      await this.deps.redis.set(this.deps.keys.brokerAuthBrowser(req.clientId), JSON.stringify(principal), 'PX', ttl);
    }
    return { ok: true, value: principal };
  }

  /** Whether `username` is the service account: the one superuser. */
  isSuperuser(username: string): boolean {
    return username === this.deps.serviceUser;
  }

  /** A publish, subscription or delivery of a connected client. */
  async access(req: AccessRequest): Promise<Decision<Principal>> {
    const found = await this.principalOf(req.username, req.clientId);
    if (!found.ok) return found;
    const p = found.value;
    const allowed =
      req.action === 'publish'
        ? canPublish(p, req.topic) && (!req.retain || canRetain(p, req.topic))
        : req.action === 'subscribe'
          ? canSubscribe(p, req.topic)
          : canReceive(p, req.topic);
    return allowed ? found : { ok: false, reason: 'not-allowed' };
  }

  /** Who a connected client is, from its username and client id (and, for a browser, its stored token claims). */
  private async principalOf(username: string, clientId: string): Promise<Decision<Principal>> {
    let p: Principal;
    if (username === this.deps.serviceUser) p = { kind: 'service', name: username };
    else if (isPortalId(username)) p = { kind: 'site', portalId: username };
    else {
      const raw = await this.deps.redis.get(this.deps.keys.brokerAuthBrowser(clientId));
      if (!raw) return { ok: false, reason: 'unknown-client' };
      const stored = JSON.parse(raw) as BrowserPrincipal;
      if (stored.subject !== username) return { ok: false, reason: 'unknown-client' };
      if (stored.expiresAt <= this.now()) return { ok: false, reason: 'expired' };
      p = stored;
    }
    return clientIdAllowed(p, clientId) ? { ok: true, value: p } : { ok: false, reason: 'client-id' };
  }

  private now(): number {
    return this.deps.now ? this.deps.now() : Date.now();
  }
}
