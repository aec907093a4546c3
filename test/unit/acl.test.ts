/**
 * The broker's topic ACL, table-driven: every kind of client × every topic family × publish/subscribe,
 * with wildcard filters. Each row lists who is allowed; everyone else must be refused.
 */
import fc from 'fast-check';
import {
  canPublish,
  canReceive,
  canRetain,
  canSubscribe,
  clientIdAllowed,
  isTopicName,
  siteClientId,
  type Principal,
} from '../../broker/acl.js';
import { topicMatches } from '../../src/protocol/topics.js';

const A = 'c0619ab1d2e3';
const B = 'd41d8cd98f00';
const JOB = 'j0000000001';
const OTHER_JOB = 'j0000000002';
const LATER = Date.now() + 3_600_000;

const principals = {
  service: { kind: 'service', name: 'worker' },
  siteA: { kind: 'site', portalId: A },
  browserAll: { kind: 'browser', subject: 'ops', role: 'operator', jobs: '*', expiresAt: LATER },
  browserJob: { kind: 'browser', subject: 'viewer', role: 'viewer', jobs: [JOB], expiresAt: LATER },
} satisfies Record<string, Principal>;
type Who = keyof typeof principals;
const everyone = Object.keys(principals) as Who[];

/** Expands `[topic, allowed]` rows into one case per principal. */
function cases(rows: Array<[string, Who[]]>): Array<[Who, string, boolean]> {
  return rows.flatMap(([topic, allowed]) =>
    everyone.map((who): [Who, string, boolean] => [who, topic, allowed.includes(who)]),
  );
}

describe('canPublish', () => {
  const rows: Array<[string, Who[]]> = [
    // Device side, own site
    [`N/${A}/system/0/Serial`, ['service', 'siteA']],
    [`N/${A}/platform/0/Firmware/State`, ['service', 'siteA']],
    [`P/${A}/out/rpc-1`, ['service', 'siteA']],
    [`P/${A}/in/rpc-1`, ['service']],
    [`R/${A}/keepalive`, ['service']],
    [`W/${A}/settings/0/x`, ['service']],
    // Device side, another site
    [`N/${B}/system/0/Serial`, ['service']],
    [`P/${B}/out/rpc-1`, ['service']],
    [`R/${B}/keepalive`, ['service']],
    // Browser side: only the service writes it
    [`fleetflash/jobs/${JOB}/status`, ['service']],
    [`fleetflash/jobs/${JOB}/devices/${A}.platform.0`, ['service']],
    [`fleetflash/devices/${A}.platform.0`, ['service']],
    // Reserved and invalid topic names: nobody
    ['$SYS/broker/new/clients', []],
    ['$anything', []],
    [`N/+/system/0/Serial`, []],
    [`N/${A}/#`, []],
    ['', []],
    [`N/${A}/bad\u0000name`, []],
    // Anything else: the service only
    ['somewhere/else', ['service']],
    // An area's own topic is in it (`N/<id>/#` matches `N/<id>`); a topic that only starts like it is not
    [`N/${A}`, ['service', 'siteA']],
    [`P/${A}/out`, ['service', 'siteA']],
    [`P/${A}/outbox/rpc-1`, ['service']],
    [`P/${A}/ou`, ['service']],
    [`N/${A}0/system/0/Serial`, ['service']],
    [`N/${A}/`, ['service', 'siteA']],
  ];

  it.each(cases(rows))('%s publishing on %j → %s', (who, topic, expected) => {
    expect(canPublish(principals[who], topic)).toBe(expected);
  });

  it("lets a site publish exactly where its areas' filters match (N/<id>/#, P/<id>/out/#)", () => {
    const level = fc.constantFrom(
      'N',
      'P',
      'R',
      'out',
      'outbox',
      'ou',
      A,
      `${A}0`,
      A.slice(0, 11),
      B,
      '',
      'x',
    );
    const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((levels) => levels.join('/'));
    fc.assert(
      fc.property(topic, (t) => {
        const expected = isTopicName(t) && [`N/${A}/#`, `P/${A}/out/#`].some((f) => topicMatches(f, t));
        expect(canPublish(principals.siteA, t)).toBe(expected);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('canRetain', () => {
  const rows: Array<[string, Who[]]> = [
    [`N/${A}/system/0/Serial`, ['service', 'siteA']],
    [`N/${A}/platform/0/Firmware/State`, ['service']],
    [`P/${A}/out/rpc-1`, ['service']],
    [`N/${B}/system/0/Serial`, ['service']],
    [`fleetflash/jobs/${JOB}/status`, ['service']],
  ];

  it.each(cases(rows))('%s retaining %j → %s', (who, topic, expected) => {
    expect(canRetain(principals[who], topic)).toBe(expected);
  });
});

describe('canSubscribe', () => {
  const rows: Array<[string, Who[]]> = [
    // Whole-broker and cross-site wildcards
    ['#', ['service']],
    ['+/#', ['service']],
    [`+/${A}/#`, ['service']],
    ['N/+/system/0/Serial', ['service']],
    ['R/+/keepalive', ['service']],
    ['$SYS/#', ['service']],
    // Own site
    [`R/${A}/#`, ['service', 'siteA']],
    [`R/${A}/keepalive`, ['service', 'siteA']],
    [`R/${A}/+/+/Serial`, ['service', 'siteA']],
    [`W/${A}/#`, ['service', 'siteA']],
    [`P/${A}/in/+`, ['service', 'siteA']],
    [`P/${A}/in/#`, ['service', 'siteA']],
    [`P/${A}/#`, ['service']],
    [`P/${A}/out/+`, ['service']],
    [`N/${A}/#`, ['service']],
    // Another site
    [`R/${B}/#`, ['service']],
    [`W/${B}/#`, ['service']],
    [`P/${B}/in/+`, ['service']],
    // Browser side
    ['fleetflash/#', ['service']],
    ['fleetflash/+/#', ['service']],
    ['fleetflash/jobs/#', ['service', 'browserAll']],
    ['fleetflash/jobs/+/status', ['service', 'browserAll']],
    [`fleetflash/jobs/${JOB}/#`, ['service', 'browserAll', 'browserJob']],
    [`fleetflash/jobs/${JOB}/status`, ['service', 'browserAll', 'browserJob']],
    [`fleetflash/jobs/${JOB}/devices/+`, ['service', 'browserAll', 'browserJob']],
    [`fleetflash/jobs/${OTHER_JOB}/#`, ['service', 'browserAll']],
    [`fleetflash/jobs/${OTHER_JOB}/status`, ['service', 'browserAll']],
    ['fleetflash/devices/#', ['service', 'browserAll', 'browserJob']],
    ['fleetflash/devices/+', ['service', 'browserAll', 'browserJob']],
    // Invalid filters: nobody, the service included ([MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.7.3-1])
    [`R/${A}/a#`, []],
    [`R/${A}/#/x`, []],
    [`R/${A}/+x`, []],
    ['', []],
  ];

  it.each(cases(rows))('%s subscribing to %j → %s', (who, filter, expected) => {
    expect(canSubscribe(principals[who], filter)).toBe(expected);
  });
});

describe('canReceive (an external broker asks per delivery)', () => {
  const rows: Array<[string, Who[]]> = [
    [`R/${A}/keepalive`, ['service', 'siteA']],
    [`W/${A}/solarcharger/258/CustomName`, ['service', 'siteA']],
    [`P/${A}/in/rpc1`, ['service', 'siteA']],
    [`P/${A}/out/rpc1`, ['service']],
    [`N/${A}/system/0/Serial`, ['service']],
    [`R/${B}/keepalive`, ['service']],
    [`P/${B}/in/rpc1`, ['service']],
    [`fleetflash/jobs/${JOB}/status`, ['service', 'browserAll', 'browserJob']],
    [`fleetflash/jobs/${JOB}/devices/${A}.solarcharger.258`, ['service', 'browserAll', 'browserJob']],
    [`fleetflash/jobs/${OTHER_JOB}/status`, ['service', 'browserAll']],
    [`fleetflash/devices/${A}.solarcharger.258`, ['service', 'browserAll', 'browserJob']],
    ['fleetflash/system/x', ['service']],
    ['$SYS/broker/uptime', ['service']],
    // Not a topic name: nobody.
    [`R/${A}/+`, []],
    ['', []],
  ];

  it.each(cases(rows))('%s receiving %j → %s', (who, topic, expected) => {
    expect(canReceive(principals[who], topic)).toBe(expected);
  });
});

describe('ids that become part of a filter are checked first', () => {
  it('a site whose portal id is a wildcard gets nothing', () => {
    const rogue: Principal = { kind: 'site', portalId: '+' };
    expect(canPublish(rogue, `N/${A}/system/0/Serial`)).toBe(false);
    expect(canSubscribe(rogue, `R/${A}/#`)).toBe(false);
    expect(clientIdAllowed(rogue, 'gx-+')).toBe(false);
  });

  it("a browser subject that is a prefix of another's cannot use the other's client ids", () => {
    const short: Principal = { kind: 'browser', subject: 'ann', role: 'viewer', jobs: '*', expiresAt: LATER };
    const long: Principal = { ...short, subject: 'ann-marie' };
    expect(clientIdAllowed(long, 'web-ann-marie-1')).toBe(true);
    expect(clientIdAllowed(short, 'web-ann-marie-1')).toBe(false);
    expect(clientIdAllowed(short, 'web-ann-1')).toBe(true);
    expect(clientIdAllowed({ ...short, subject: '' }, 'web--1')).toBe(false);
  });

  it('a browser job id that is not a job id grants nothing', () => {
    const rogue: Principal = {
      kind: 'browser',
      subject: 'x',
      role: 'viewer',
      jobs: ['+', '#'],
      expiresAt: LATER,
    };
    expect(canSubscribe(rogue, `fleetflash/jobs/${JOB}/status`)).toBe(false);
    expect(canSubscribe(rogue, 'fleetflash/jobs/+/status')).toBe(false);
    expect(canSubscribe(rogue, 'fleetflash/devices/#')).toBe(true);
  });
});

describe('clientIdAllowed', () => {
  const rows: Array<[string, Who[]]> = [
    [siteClientId(A), ['siteA']],
    [A, ['service']],
    [siteClientId(B), []],
    [`gx-${A}-2`, []],
    ['gx-', []],
    // Browsers: web-<subject>-<word>, bound to the token's subject (ops / viewer here)
    ['web-ops-3f2a', ['browserAll']],
    ['web-viewer-3f2a', ['browserJob']],
    ['web-viewer-3f2a_B9', ['browserJob']],
    ['web-3f2a', []],
    ['web-viewer-', []],
    ['web-viewer-3f-2a', []],
    ['web-viewer-3f/2a', []],
    [`web-viewer-${'a'.repeat(65)}`, []],
    ['web-', []],
    ['worker-1', ['service']],
    ['fleetflash-api', ['service']],
    ['', []],
  ];

  it.each(cases(rows))('%s connecting as %j → %s', (who, clientId, expected) => {
    expect(clientIdAllowed(principals[who], clientId)).toBe(expected);
  });
});
