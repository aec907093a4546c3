/**
 * Who may do what on the broker: the table in ARCHITECTURE.md ("Who may do what on the broker") as pure
 * functions. No I/O and no clock: the broker wires these into aedes' hooks, the tests call them directly.
 *
 * Every allowed area is written as an MQTT topic filter and checked with the protocol module's matchers,
 * so a wildcard subscription is granted only when every topic it could ever match is granted.
 */
import { isJobId, isPortalId } from '../src/protocol/ids.js';
import { FLEETFLASH_ROOT, filterWithin, serialTopic, topicMatches } from '../src/protocol/topics.js';

/** Who a connection authenticated as; remembered for the life of the connection. */
export type Principal =
  | { kind: 'service'; name: string }
  | { kind: 'site'; portalId: string }
  | {
      kind: 'browser';
      subject: string;
      /** Both roles may only read on the broker; the role matters to the REST API. */
      role: 'viewer' | 'operator';
      /** `'*'`: every job; otherwise the ids of the jobs this token may watch. */
      jobs: '*' | string[];
      /** Epoch ms; the broker closes the connection when it passes. */
      expiresAt: number;
    };

/** Kinds of principal, for metrics and logs. */
export type PrincipalKind = Principal['kind'];
export const PRINCIPAL_KINDS: readonly PrincipalKind[] = ['service', 'site', 'browser'];

/** A site's client id is `gx-<portalId>`, nothing else: see {@link clientIdAllowed}. */
export const SITE_CLIENT_ID_PREFIX = 'gx-';
/** Browser client ids start with `web-`; then the token's subject: see {@link browserClientIdPrefix}. */
export const BROWSER_CLIENT_ID_PREFIX = 'web-';
/** What may follow a browser's prefix: one short plain word (no `-`, so the subject part is unambiguous). */
const BROWSER_CLIENT_ID_SUFFIX_RE = /^[0-9A-Za-z_]{1,64}$/;

/** The one client id a site may use. */
export function siteClientId(portalId: string): string {
  return `${SITE_CLIENT_ID_PREFIX}${portalId}`;
}

/**
 * What a browser's client id must start with: `web-<subject>-`, followed by 1–64 letters, digits or
 * `_` (the portal uses 16 random hex digits). Binding the id to the token's subject means a user can
 * only ever take over ([MQTT-3.1.4-2]) their own sessions, never another user's live view.
 */
export function browserClientIdPrefix(subject: string): string {
  return `${BROWSER_CLIENT_ID_PREFIX}${subject}-`;
}

/**
 * True when `p` may publish on `topic`.
 * Nobody publishes on `$…` topics, the service included: they are reserved for the server
 * ([MQTT-4.7.2-1] and §4.7.2), and aedes acts on `$SYS/+/new/clients` by closing the named client,
 * so a client publishing there could kick any other off (moscajs/aedes#597).
 */
export function canPublish(p: Principal, topic: string): boolean {
  if (!isTopicName(topic) || topic.startsWith('$')) return false;
  switch (p.kind) {
    case 'service':
      return true;
    case 'site':
      for (const area of sitePublishAreas(p)) if (withinArea(topic, area)) return true;
      return false;
    case 'browser':
      return false;
  }
}

/**
 * True when a publish by `p` that it may make ({@link canPublish}) may also be stored as retained.
 * A GX retains exactly one topic, its `N/<portalId>/system/0/Serial` (the Venus dialect; its will is a
 * retained null there). Anything else a site marks retained is delivered live but not stored: the
 * broker's retained store is memory every later wildcard subscription walks, and a site must not be
 * able to fill it.
 */
export function canRetain(p: Principal, topic: string): boolean {
  switch (p.kind) {
    case 'service':
      return true;
    case 'site':
      return isPortalId(p.portalId) && topic === serialTopic(p.portalId);
    case 'browser':
      return false;
  }
}

/**
 * True when `p` may subscribe to `filter`. A wildcard filter is allowed only when it lies entirely
 * within one allowed area ({@link filterWithin}): `N/+/system/0/Serial` is refused to a site because
 * it would also match other sites' topics.
 */
export function canSubscribe(p: Principal, filter: string): boolean {
  if (!isTopicFilter(filter)) return false;
  const areas = subscribeAreas(p);
  return areas === null || areas.some((allowed) => filterWithin(filter, allowed));
}

/**
 * True when a message on `topic` may be delivered to `p`: the topic lies in an area `p` may subscribe
 * to. The embedded broker needs no such check (it delivers only what an allowed subscription
 * matches); an external broker asks it per delivery (mosquitto-go-auth's read check).
 */
export function canReceive(p: Principal, topic: string): boolean {
  if (!isTopicName(topic)) return false;
  const areas = subscribeAreas(p);
  return areas === null || areas.some((allowed) => topicMatches(allowed, topic));
}

/**
 * True when `p` may connect with `clientId`. A broker disconnects the existing session when another
 * connects with the same client id ([MQTT-3.1.4-2]), so ids are partitioned by kind: a site must use
 * exactly `gx-<portalId>`, a browser `web-<subject>-<word>` ({@link browserClientIdPrefix}), the
 * service anything outside those two namespaces. Then no site or browser can kick a site, a worker
 * or another user's browser off by reusing its id.
 */
export function clientIdAllowed(p: Principal, clientId: string): boolean {
  switch (p.kind) {
    case 'site':
      return isPortalId(p.portalId) && clientId === siteClientId(p.portalId);
    case 'browser': {
      const prefix = browserClientIdPrefix(p.subject);
      return (
        p.subject.length > 0 &&
        clientId.startsWith(prefix) &&
        BROWSER_CLIENT_ID_SUFFIX_RE.test(clientId.slice(prefix.length))
      );
    }
    case 'service':
      return (
        clientId.length > 0 &&
        !clientId.startsWith(SITE_CLIENT_ID_PREFIX) &&
        !clientId.startsWith(BROWSER_CLIENT_ID_PREFIX)
      );
  }
}

/**
 * A valid PUBLISH topic name: at least one character ([MQTT-4.7.3-1]), no NUL ([MQTT-4.7.3-2]),
 * no wildcards ([MQTT-3.3.2-2], [MQTT-4.7.1-1]).
 */
export function isTopicName(topic: string): boolean {
  return topic.length > 0 && !topic.includes('+') && !topic.includes('#') && !topic.includes('\u0000');
}

/**
 * A valid SUBSCRIBE topic filter: at least one character ([MQTT-4.7.3-1]), no NUL ([MQTT-4.7.3-2]),
 * `#` only as the whole last level ([MQTT-4.7.1-2]), `+` only as a whole level ([MQTT-4.7.1-3]).
 */
export function isTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((level, i) => {
    if (level === '#') return i === levels.length - 1;
    return level === '+' || !/[+#]/.test(level);
  });
}

// The allowed areas below are built from ids that end up inside topic filters, so each id is checked
// first: a principal whose "portal id" were `+` would otherwise be granted `N/+/#`.

/**
 * Publish areas per site principal, built once per connection: the ACL checks every PUBLISH. Each is
 * the filter `<area>/#` kept as its prefix `<area>/`, matched by {@link withinArea}.
 */
const publishAreas = new WeakMap<Principal, string[]>();

function sitePublishAreas(p: Extract<Principal, { kind: 'site' }>): string[] {
  let areas = publishAreas.get(p);
  if (!areas) {
    areas = isPortalId(p.portalId) ? [`N/${p.portalId}/`, `P/${p.portalId}/out/`] : [];
    publishAreas.set(p, areas);
  }
  return areas;
}

/**
 * True when `topic` matches the filter `<area>/#`, given as `prefix` = `<area>/`: the topic is the
 * area itself or lies below it ([MQTT-4.7.1-2]: `sport/#` also matches `sport`). The same answer as
 * `topicMatches` for such a filter, as two string comparisons: a site's every PUBLISH is checked here.
 */
function withinArea(topic: string, prefix: string): boolean {
  return topic.startsWith(prefix) || (topic.length === prefix.length - 1 && prefix.startsWith(topic));
}

/** The filters `p` may subscribe within ({@link canSubscribe}) and receive from ({@link canReceive}); null: anything. */
function subscribeAreas(p: Principal): readonly string[] | null {
  switch (p.kind) {
    case 'service':
      return null;
    case 'site':
      return siteSubscribeFilters(p.portalId);
    case 'browser':
      return browserSubscribeFilters(p);
  }
}

function siteSubscribeFilters(portalId: string): string[] {
  if (!isPortalId(portalId)) return [];
  return [`R/${portalId}/#`, `W/${portalId}/#`, `P/${portalId}/in/#`];
}

function browserSubscribeFilters(p: Extract<Principal, { kind: 'browser' }>): string[] {
  const devices = `${FLEETFLASH_ROOT}/devices/#`;
  if (p.jobs === '*') return [`${FLEETFLASH_ROOT}/jobs/#`, devices];
  return [...p.jobs.filter((id) => isJobId(id)).map((id) => `${FLEETFLASH_ROOT}/jobs/${id}/#`), devices];
}
