/**
 * The broker contract of ARCHITECTURE.md ("Who may do what on the broker"), proven against the real
 * service: real site secrets from `POST /api/sites`, real browser tokens from `POST
 * /api/mqtt-credentials`, the real authenticator, ACL and broker.
 *
 * For every client kind and every topic family the test connects, subscribes (SUBACK code per
 * filter, then what is actually delivered) and publishes (what actually reaches a service observer),
 * and compares with the table below, written out here rather than derived from broker/acl.ts.
 *
 * "Never delivered" is proven without sleeping: refused publishes go with QoS 2, so by PUBCOMP the
 * broker has finished routing them; then a sentinel follows on the same path, and once the sentinel
 * is in, anything routed before it would have been too. Refused publishes are acknowledged and
 * dropped, not disconnected ([MQTT-3.3.5-2]): every client is checked to be still connected after.
 */
import { TokenSigner } from '../../src/auth/tokens.js';
import { connectMqtt, waitConnected, type MqttClient } from '../../src/mqtt/connect.js';
import { MessageLog } from '../helpers/broker-harness.js';
import { A, ALL, B, CONTRACT, FAMILIES, receivedFamilies, WHO, X, Y, type Who } from '../helpers/broker-contract.js';
import { startHarness, type Harness } from '../helpers/service-harness.js';

/** A topic each client may subscribe to, for its sentinel. */
const SENTINEL: Record<Who, string> = {
  siteA: `R/${A}/acl-sentinel`,
  siteB: `R/${B}/acl-sentinel`,
  browserX: 'fleetflash/devices/acl-sentinel',
  browserY: 'fleetflash/devices/acl-sentinel',
  viewer: 'fleetflash/devices/acl-sentinel',
  operator: 'fleetflash/devices/acl-sentinel',
  service: 'acl/sentinel',
};

interface Credentials {
  url: string;
  username: string;
  password: string;
  clientIdPrefix: string;
}

let h: Harness;
const secrets = new Map<string, string>();
const clients = new Map<Who, MqttClient>();
const logs = new Map<Who, MessageLog>();
const opened: MqttClient[] = [];
let observer: MqttClient;
let observed: MessageLog;
let tokens: TokenSigner;

function open(url: string, options: Parameters<typeof connectMqtt>[1]): MqttClient {
  const client = connectMqtt(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  client.on('error', () => undefined);
  opened.push(client);
  return client;
}

/** The CONNACK return code of a refused connection (rejects if it is accepted). */
function refusal(client: MqttClient): Promise<number> {
  return new Promise((resolve, reject) => {
    client.once('connect', () => reject(new Error('connection was accepted')));
    client.once('error', (err: Error & { code?: number }) => resolve(Number(err.code)));
  });
}

async function browserCredentials(token: string, jobs?: string[]): Promise<Credentials> {
  const res = await h.api('/api/mqtt-credentials', {
    method: 'POST',
    token,
    ...(jobs ? { json: { jobs } } : {}),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Credentials;
}

async function granted(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 1 })).map((g) => g.qos);
  } catch (err) {
    const suback = (err as { packet?: { granted?: number[] } }).packet;
    if (!suback?.granted) throw err;
    return suback.granted;
  }
}

beforeAll(async () => {
  h = await startHarness();
  tokens = new TokenSigner(h.service.config.signingSecret);
  const res = await h.api('/api/sites', {
    method: 'POST',
    json: { sites: [{ portalId: A }, { portalId: B }] },
  });
  expect(res.status).toBe(201);
  for (const s of ((await res.json()) as { sites: { portalId: string; secret: string }[] }).sites) {
    secrets.set(s.portalId, s.secret);
  }
  const tcp = h.service.mqttUrl;
  const svc = { username: h.service.config.mqttServiceUser, password: h.service.config.mqttServicePassword };
  observer = open(tcp, { clientId: 'acl-observer', ...svc });
  observed = new MessageLog(observer);
  await waitConnected(observer);
  await observer.subscribeAsync(['#', '$SYS/#'], { qos: 1 });

  const creds: Record<'browserX' | 'browserY' | 'viewer' | 'operator', Credentials> = {
    browserX: await browserCredentials(h.viewerToken, [X]),
    browserY: await browserCredentials(h.operatorToken, [Y]),
    viewer: await browserCredentials(h.viewerToken),
    operator: await browserCredentials(h.operatorToken),
  };
  const made: Record<Who, MqttClient> = {
    siteA: open(tcp, { clientId: `gx-${A}`, username: A, password: secrets.get(A) }),
    siteB: open(tcp, { clientId: `gx-${B}`, username: B, password: secrets.get(B) }),
    service: open(tcp, { clientId: 'acl-service', ...svc }),
    ...(Object.fromEntries(
      Object.entries(creds).map(([who, c]) => [
        who,
        open(c.url, { clientId: `${c.clientIdPrefix}acl${who}`, username: c.username, password: c.password }),
      ]),
    ) as Record<'browserX' | 'browserY' | 'viewer' | 'operator', MqttClient>),
  };
  for (const who of WHO) {
    clients.set(who, made[who]);
    logs.set(who, new MessageLog(made[who]));
  }
  await Promise.all(WHO.map((who) => waitConnected(made[who])));
});

afterAll(async () => {
  await Promise.all(opened.map((c) => c.endAsync(true)));
  await h?.close();
});

describe('connect', () => {
  test('every legitimate kind connects: sites over TCP, browsers over WebSocket, the service', () => {
    for (const who of WHO) expect([who, clients.get(who)!.connected]).toEqual([who, true]);
    expect(h.service.broker!.stats().connectsAccepted).toMatchObject({
      site: expect.any(Number),
      browser: expect.any(Number),
      service: expect.any(Number),
    });
  });

  test('anonymous, wrong secrets, forged or expired tokens and foreign client ids are refused', async () => {
    const tcp = h.service.mqttUrl;
    const viewer = await browserCredentials(h.viewerToken);
    const [head, payload, signature] = viewer.password.split('.');
    const flipped = `${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`;
    // A token whose payload claims more (operator, every job) with the viewer's signature.
    const forgedPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), role: 'operator' }),
    ).toString('base64url');
    const expired = tokens.browserToken(viewer.username, 'viewer', '*', -5000);
    const foreignKey = new TokenSigner('another-signing-secret-0123456789abcdef').browserToken(
      viewer.username,
      'operator',
      '*',
      60_000,
    );
    const svcUser = h.service.config.mqttServiceUser;
    const cases: [string, string, Parameters<typeof connectMqtt>[1], number][] = [
      ['anonymous', tcp, { clientId: 'anon-1' }, 5],
      ['anonymous with a site client id', tcp, { clientId: `gx-${A}` }, 5],
      ['wrong site secret', tcp, { clientId: `gx-${A}`, username: A, password: 'guess' }, 4],
      ["site B's secret for site A", tcp, { clientId: `gx-${A}`, username: A, password: secrets.get(B) }, 4],
      [
        'unregistered site',
        tcp,
        { clientId: 'gx-eeeeeeeeeeee', username: 'eeeeeeeeeeee', password: secrets.get(A) },
        4,
      ],
      ['wrong service password', tcp, { clientId: 'svc-x', username: svcUser, password: 'guess' }, 4],
      [
        'tampered token signature',
        viewer.url,
        {
          clientId: `${viewer.clientIdPrefix}t1`,
          username: viewer.username,
          password: `${head}.${payload}.${flipped}`,
        },
        4,
      ],
      [
        'token payload rewritten',
        viewer.url,
        {
          clientId: `${viewer.clientIdPrefix}t2`,
          username: viewer.username,
          password: `${head}.${forgedPayload}.${signature}`,
        },
        4,
      ],
      [
        'token signed with another key',
        viewer.url,
        { clientId: `${viewer.clientIdPrefix}t3`, username: viewer.username, password: foreignKey.token },
        4,
      ],
      [
        'expired token',
        viewer.url,
        { clientId: `${viewer.clientIdPrefix}t4`, username: viewer.username, password: expired.token },
        4,
      ],
      [
        "another user's name with the token",
        viewer.url,
        { clientId: 'web-operator-1-t5', username: 'operator-1', password: viewer.password },
        4,
      ],
      ['site with site B client id', tcp, { clientId: `gx-${B}`, username: A, password: secrets.get(A) }, 2],
      ['site with a service-style id', tcp, { clientId: 'svc-a', username: A, password: secrets.get(A) }, 2],
      [
        "browser with another user's client id",
        viewer.url,
        { clientId: 'web-operator-1-x', username: viewer.username, password: viewer.password },
        2,
      ],
      [
        'browser with a bare web- id',
        viewer.url,
        { clientId: 'web-x', username: viewer.username, password: viewer.password },
        2,
      ],
      [
        'service with a site client id',
        tcp,
        { clientId: `gx-${A}`, username: svcUser, password: h.service.config.mqttServicePassword },
        2,
      ],
    ];
    const before = h.service.broker!.stats();
    for (const [name, url, options, code] of cases) {
      expect([name, await refusal(open(url, options))]).toEqual([name, code]);
    }
    const after = h.service.broker!.stats();
    expect(after.connectsRefused.anonymous - before.connectsRefused.anonymous).toBe(2);
    expect(after.connectsRefused['bad-credentials'] - before.connectsRefused['bad-credentials']).toBe(9);
    expect(after.siteAuthFailures - before.siteAuthFailures).toBe(3);
    expect(after.connectsRefused['client-id'] - before.connectsRefused['client-id']).toBe(5);
    // None of the refused attempts took over the legitimate site sessions.
    expect([clients.get('siteA')!.connected, clients.get('siteB')!.connected]).toEqual([true, true]);
  });

  test('a re-registered site: the old secret stops working, the new one works', async () => {
    const C = 'c0c0c0c0c0c3';
    const first = (await (await h.api('/api/sites', { method: 'POST', json: { portalId: C } })).json()) as {
      secret: string;
    };
    const second = (await (await h.api('/api/sites', { method: 'POST', json: { portalId: C } })).json()) as {
      secret: string;
    };
    expect(
      await refusal(open(h.service.mqttUrl, { clientId: `gx-${C}`, username: C, password: first.secret })),
    ).toBe(4);
    const ok = open(h.service.mqttUrl, { clientId: `gx-${C}`, username: C, password: second.secret });
    await waitConnected(ok);
    await ok.endAsync();
  });

  test('a browser connection is closed when its token expires', async () => {
    const before = h.service.broker!.stats().browserTokenExpiries;
    const short = tokens.browserToken('viewer-2', 'viewer', '*', 2000);
    const url = (await browserCredentials(h.viewerToken)).url;
    const client = open(url, { clientId: 'web-viewer-2-short', username: 'viewer-2', password: short.token });
    await waitConnected(client);
    await new Promise<void>((resolve) => client.once('close', () => resolve()));
    expect(Date.now()).toBeGreaterThanOrEqual(short.expiresAt);
    expect(h.service.broker!.stats().browserTokenExpiries).toBe(before + 1);
  });
});

describe('subscribe', () => {
  test.each(WHO)('%s: SUBACK grants exactly the allowed filters', async (who) => {
    const codes = await granted(
      clients.get(who)!,
      ALL.map((f) => FAMILIES[f].filter),
    );
    const got = Object.fromEntries(ALL.map((f, i) => [f, codes[i] === 128 ? 'refused' : 'granted']));
    const want = Object.fromEntries(
      ALL.map((f) => [f, CONTRACT[who].subscribe.includes(f) ? 'granted' : 'refused']),
    );
    expect(got).toEqual(want);
  });

  test('delivery follows the grants: each client receives exactly the probes of its families', async () => {
    const service = clients.get('service')!;
    for (const f of ALL) {
      const topic = FAMILIES[f].topic;
      if (topic && f !== '$SYS')
        await service.publishAsync(topic, JSON.stringify({ phase: 'delivery', f }), { qos: 1 });
    }
    for (const who of WHO) await service.publishAsync(SENTINEL[who], 'delivery-done', { qos: 1 });
    for (const who of WHO) {
      const log = logs.get(who)!;
      await log.next(SENTINEL[who]);
      const delivered = new Set(
        log.messages.filter((m) => m.payload.toString().includes('"phase":"delivery"')).map((m) => m.topic),
      );
      // Nobody may publish on $SYS: the probe there is never sent.
      const expected = receivedFamilies(who)
        .filter((f) => f !== '$SYS')
        .map((f) => FAMILIES[f].topic);
      expect([who, [...delivered].sort()]).toEqual([who, [...new Set(expected)].sort()]);
    }
  });

  test("only the service sees the broker's own $SYS topics", async () => {
    const probe = open(h.service.mqttUrl, {
      clientId: 'acl-sys-probe',
      username: h.service.config.mqttServiceUser,
      password: h.service.config.mqttServicePassword,
    });
    const seen = observed.next(`$SYS/${h.service.broker!.aedes.id}/new/clients`);
    await waitConnected(probe);
    expect((await seen).payload.toString()).toBeTruthy();
    await probe.endAsync();
  });
});

describe('publish', () => {
  test.each(WHO)(
    '%s: only the allowed publishes reach anyone; refused ones are acknowledged, not disconnected',
    async (who) => {
      const client = clients.get(who)!;
      const refusedBefore = h.service.broker!.stats().publishesRefused.topic;
      const tag = `pub-${who}`;
      const attempted = ALL.filter((f) => FAMILIES[f].topic !== null);
      for (const f of attempted) {
        // QoS 2: PUBCOMP comes after the broker finished with the message, routed or dropped.
        await client.publishAsync(FAMILIES[f].topic!, JSON.stringify({ phase: tag, f }), { qos: 2 });
      }
      expect(client.connected).toBe(true);
      const sentinel = `acl/sentinel/${tag}`;
      await clients.get('service')!.publishAsync(sentinel, '', { qos: 1 });
      await observed.next(sentinel);
      const reached = observed.messages
        .filter((m) => m.payload.toString().includes(`"phase":"${tag}"`))
        .map((m) => m.topic)
        .sort();
      const expected = attempted
        .filter((f) => CONTRACT[who].publish.includes(f))
        .map((f) => FAMILIES[f].topic!)
        .sort();
      expect(reached).toEqual(expected);
      const refused = attempted.filter((f) => !CONTRACT[who].publish.includes(f)).length;
      expect(h.service.broker!.stats().publishesRefused.topic - refusedBefore).toBe(refused);
    },
  );

  test('a will outside what the client may publish is refused at CONNECT', async () => {
    const code = await refusal(
      open(h.service.mqttUrl, {
        clientId: `gx-${A}`,
        username: A,
        password: secrets.get(A),
        will: {
          topic: `N/${B}/system/0/Serial`,
          payload: Buffer.from('{"value":null}'),
          qos: 1,
          retain: true,
        },
      }),
    );
    expect(code).toBe(5);
    expect(clients.get('siteA')!.connected).toBe(true);
  });
});
