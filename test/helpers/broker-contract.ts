/**
 * The broker contract of ARCHITECTURE.md ("Who may do what on the broker") as a table, written out
 * here rather than derived from broker/acl.ts: one probe topic and one filter per topic family, and
 * for each kind of client the families it may publish on and subscribe to. Everything else is
 * refused. The embedded broker (security-acl.test.ts) and the auth hook for external brokers
 * (broker-auth-hook.test.ts) are both held to it.
 */
import { topicMatches } from '../../src/protocol/index.js';

export const A = 'acacacacac01';
export const B = 'bdbdbdbdbd02';
export const X = 'jaclx0000001';
export const Y = 'jacly0000002';

/** One topic per family to publish on (null: not a topic name) and the filter that covers the family. */
export const FAMILIES = {
  'N/A': { topic: `N/${A}/acl/0/Probe`, filter: `N/${A}/#` },
  'N/B': { topic: `N/${B}/acl/0/Probe`, filter: `N/${B}/#` },
  'R/A': { topic: `R/${A}/acl/0/Probe`, filter: `R/${A}/#` },
  'R/B': { topic: `R/${B}/acl/0/Probe`, filter: `R/${B}/#` },
  'W/A': { topic: `W/${A}/acl/0/Probe`, filter: `W/${A}/#` },
  'W/B': { topic: `W/${B}/acl/0/Probe`, filter: `W/${B}/#` },
  'P/A/in': { topic: `P/${A}/in/aclprobe`, filter: `P/${A}/in/#` },
  'P/A/out': { topic: `P/${A}/out/aclprobe`, filter: `P/${A}/out/#` },
  'P/B/in': { topic: `P/${B}/in/aclprobe`, filter: `P/${B}/in/#` },
  'P/B/out': { topic: `P/${B}/out/aclprobe`, filter: `P/${B}/out/#` },
  'jobs/X': { topic: `fleetflash/jobs/${X}/status`, filter: `fleetflash/jobs/${X}/#` },
  'jobs/Y': { topic: `fleetflash/jobs/${Y}/status`, filter: `fleetflash/jobs/${Y}/#` },
  'jobs/+': { topic: null, filter: 'fleetflash/jobs/+/status' },
  devices: { topic: 'fleetflash/devices/acl-probe', filter: 'fleetflash/devices/#' },
  elsewhere: { topic: 'elsewhere/acl', filter: 'elsewhere/#' },
  '#': { topic: null, filter: '#' },
  $SYS: { topic: '$SYS/acl/probe', filter: '$SYS/#' },
} as const;
export type Family = keyof typeof FAMILIES;
export const ALL = Object.keys(FAMILIES) as Family[];

export type Who = 'siteA' | 'siteB' | 'browserX' | 'browserY' | 'viewer' | 'operator' | 'service';

/** The contract: what each client may publish on and subscribe to. Everything else is refused. */
export const CONTRACT: Record<Who, { publish: Family[]; subscribe: Family[] }> = {
  siteA: { publish: ['N/A', 'P/A/out'], subscribe: ['R/A', 'W/A', 'P/A/in'] },
  siteB: { publish: ['N/B', 'P/B/out'], subscribe: ['R/B', 'W/B', 'P/B/in'] },
  browserX: { publish: [], subscribe: ['jobs/X', 'devices'] },
  browserY: { publish: [], subscribe: ['jobs/Y', 'devices'] },
  viewer: { publish: [], subscribe: ['jobs/X', 'jobs/Y', 'jobs/+', 'devices'] },
  operator: { publish: [], subscribe: ['jobs/X', 'jobs/Y', 'jobs/+', 'devices'] },
  // Anything, except publishing on `$` topics: reserved for the broker, the service included.
  service: { publish: ALL.filter((f) => f !== '$SYS'), subscribe: ALL },
};
export const WHO = Object.keys(CONTRACT) as Who[];

/** The families whose probe topics a client may receive: those its allowed subscriptions cover. */
export function receivedFamilies(who: Who): Family[] {
  return ALL.filter((f) => {
    const topic = FAMILIES[f].topic;
    return topic !== null && CONTRACT[who].subscribe.some((g) => topicMatches(FAMILIES[g].filter, topic));
  });
}
