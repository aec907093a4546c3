/**
 * Who is connecting to the broker: the service (credentials from config), a site (its portal id and
 * its own secret, checked against the stored hash) or a browser (a short-lived signed token).
 * Anything else is refused.
 */
import type { Principal } from '../../broker/acl.js';
import { isPortalId } from '../protocol/index.js';
import type { SiteStore } from '../store/site-store.js';
import { matchesDigest, secretDigest } from './secret-digest.js';
import type { TokenSigner } from './tokens.js';

export interface MqttAuthDeps {
  serviceUser: string;
  servicePassword: string;
  sites: SiteStore;
  tokens: TokenSigner;
}

export interface ConnectAttempt {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  remoteAddress: string | undefined;
}

export function createMqttAuthenticator(deps: MqttAuthDeps): (req: ConnectAttempt) => Promise<Principal | null> {
  const serviceDigest = secretDigest(deps.servicePassword);
  return async ({ username, password }) => {
    if (!username || !password || password.length === 0 || password.length > 4096) return null;
    const secret = password.toString('utf8');
    if (username === deps.serviceUser) {
      return matchesDigest(serviceDigest, secret) ? { kind: 'service', name: username } : null;
    }
    if (isPortalId(username)) {
      return (await deps.sites.verify(username, secret)) ? { kind: 'site', portalId: username } : null;
    }
    const claims = deps.tokens.verifyBrowserToken(secret);
    if (!claims || claims.subject !== username) return null;
    return { kind: 'browser', subject: claims.subject, role: claims.role, jobs: claims.jobs, expiresAt: claims.expiresAt };
  };
}
