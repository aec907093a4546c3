/**
 * The auth hook an external broker calls (`BROKER_AUTH_PORT`), held to the same broker contract as
 * the embedded broker (test/helpers/broker-contract.ts): real site secrets from `POST /api/sites`,
 * real browser tokens from `POST /api/mqtt-credentials`, real Redis. The brokers themselves (EMQX,
 * Mosquitto with mosquitto-go-auth) cannot run here, so the test makes their HTTP calls as their
 * documentation describes them: mosquitto-go-auth's `http` backend (JSON and form parameters,
 * status answers; acc 1 read, 2 write, 3 both, 4 subscribe) and EMQX 5's HTTP authenticator and
 * authorizer (200 with a result).
 */
import { pino } from 'pino';
import { startBrokerAuthServer } from '../../src/api/broker-auth-server.js';
import { BrokerAuthHook } from '../../src/auth/broker-auth-hook.js';
import { createMqttAuthenticator } from '../../src/auth/mqtt-auth.js';
import { TokenSigner } from '../../src/auth/tokens.js';
import { createKeys } from '../../src/store/keys.js';
import { A, ALL, B, CONTRACT, FAMILIES, receivedFamilies, WHO, X, Y, type Family, type Who } from '../helpers/broker-contract.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

let h: Harness;
let hookUrl: string;
let tokens: TokenSigner;
const secrets = new Map<string, string>();
/** Username, password and client id each kind of client connects with. */
const login = new Map<Who, { username: string; password: string; clientid: string }>();

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function post(path: string, body: Record<string, unknown>, options: { form?: boolean; base?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(`${options.base ?? hookUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': options.form ? 'application/x-www-form-urlencoded' : 'application/json', ...options.headers },
    body: options.form ? new URLSearchParams(Object.entries(body).map(([k, v]) => [k, String(v)])).toString() : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function browserCredentials(token: string, jobs?: string[]) {
  const res = await h.api('/api/mqtt-credentials', { method: 'POST', token, ...(jobs ? { json: { jobs } } : {}) });
  expect(res.status).toBe(200);
  return (await res.json()) as { username: string; password: string; clientIdPrefix: string };
}

/** go-auth's ACL answer for one client, one topic, one access. */
const acl = async (who: Who, topic: string, acc: number, form = false) => {
  const { username, clientid } = login.get(who)!;
  return (await post('/mosquitto/acl', { username, clientid, topic, acc }, { form })).status;
};
const emqxAuthz = async (who: Who, action: 'publish' | 'subscribe', topic: string, retain = false) => {
  const { username, clientid } = login.get(who)!;
  return (await post('/emqx/authz', { username, clientid, action, topic, retain })).body.result;
};

beforeAll(async () => {
  h = await startHarness({ env: { BROKER_AUTH_PORT: '0' } });
  hookUrl = `http://127.0.0.1:${h.service.brokerAuthPort}`;
  tokens = new TokenSigner(h.service.config.signingSecret);
  const res = await h.api('/api/sites', { method: 'POST', json: { sites: [{ portalId: A }, { portalId: B }] } });
  expect(res.status).toBe(201);
  for (const s of ((await res.json()) as { sites: { portalId: string; secret: string }[] }).sites) secrets.set(s.portalId, s.secret);
  const browsers = {
    browserX: await browserCredentials(h.viewerToken, [X]),
    browserY: await browserCredentials(h.operatorToken, [Y]),
    viewer: await browserCredentials(h.viewerToken),
    operator: await browserCredentials(h.operatorToken),
  };
  login.set('siteA', { username: A, password: secrets.get(A)!, clientid: `gx-${A}` });
  login.set('siteB', { username: B, password: secrets.get(B)!, clientid: `gx-${B}` });
  login.set('service', { username: h.service.config.mqttServiceUser, password: h.service.config.mqttServicePassword, clientid: 'svc-hook' });
  for (const [who, c] of Object.entries(browsers)) login.set(who as Who, { username: c.username, password: c.password, clientid: `${c.clientIdPrefix}hook${who}` });
});

afterAll(async () => {
  await h?.close();
});

describe('connect', () => {
  test.each(WHO)('%s connects (mosquitto-go-auth: 200; EMQX: allow, superuser only the service)', async (who) => {
    const user = await post('/mosquitto/user', login.get(who)!);
    expect(user).toEqual({ status: 200, body: { Ok: true, Error: '' } });
    const authn = await post('/emqx/authn', login.get(who)!);
    expect(authn.status).toBe(200);
    expect(authn.body).toMatchObject({ result: 'allow', is_superuser: who === 'service' });
    if (who.startsWith('browser') || who === 'viewer' || who === 'operator') {
      // EMQX closes the session when the token expires.
      expect(authn.body.expire_at).toEqual(expect.any(Number));
      expect((authn.body.expire_at as number) * 1000).toBeGreaterThan(Date.now());
    } else {
      expect(authn.body).not.toHaveProperty('expire_at');
    }
    const superuser = await post('/mosquitto/superuser', { username: login.get(who)!.username });
    expect(superuser.status).toBe(who === 'service' ? 200 : 403);
  });

  test('wrong secrets, foreign client ids, expired and foreign tokens are refused in both dialects', async () => {
    const viewer = login.get('viewer')!;
    const expired = tokens.browserToken(viewer.username, 'viewer', '*', -5000);
    const foreign = new TokenSigner('another-signing-secret-0123456789abcdef').browserToken(viewer.username, 'operator', '*', 60_000);
    const cases: [string, { username: string; password: string; clientid: string }, string][] = [
      ['wrong site secret', { ...login.get('siteA')!, password: 'guess' }, 'bad-credentials'],
      ["site B's secret for site A", { ...login.get('siteA')!, password: secrets.get(B)! }, 'bad-credentials'],
      ['unregistered site', { username: 'eeeeeeeeeeee', password: secrets.get(A)!, clientid: 'gx-eeeeeeeeeeee' }, 'bad-credentials'],
      ['wrong service password', { ...login.get('service')!, password: 'guess' }, 'bad-credentials'],
      ['site A with site B client id', { ...login.get('siteA')!, clientid: `gx-${B}` }, 'client-id'],
      ['the service with a site client id', { ...login.get('service')!, clientid: `gx-${A}` }, 'client-id'],
      ["browser with another user's client id", { ...viewer, clientid: 'web-operator-1-x' }, 'client-id'],
      ['expired token', { ...viewer, password: expired.token, clientid: `${viewer.clientid}e` }, 'bad-credentials'],
      ['token signed with another key', { ...viewer, password: foreign.token }, 'bad-credentials'],
      ['anonymous', { username: '', password: '', clientid: 'anon-1' }, 'bad-credentials'],
    ];
    for (const [name, creds, reason] of cases) {
      expect([name, await post('/mosquitto/user', creds)]).toEqual([name, { status: 403, body: { Ok: false, Error: reason } }]);
      expect([name, await post('/emqx/authn', creds)]).toEqual([name, { status: 200, body: { result: 'deny' } }]);
    }
  });
});

describe('access follows the broker contract', () => {
  const expectation = (who: Who, f: Family, access: 'publish' | 'subscribe' | 'receive') =>
    access === 'receive' ? receivedFamilies(who).includes(f) : CONTRACT[who][access].includes(f);

  test.each(WHO)('%s: mosquitto-go-auth ACL (subscribe 4, write 2, read 1, both 3)', async (who) => {
    const got: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const f of ALL) {
      const { topic, filter } = FAMILIES[f];
      got[`subscribe ${f}`] = (await acl(who, filter, 4)) === 200 ? 'allowed' : 'refused';
      want[`subscribe ${f}`] = expectation(who, f, 'subscribe') ? 'allowed' : 'refused';
      if (topic === null) continue;
      got[`publish ${f}`] = (await acl(who, topic, 2)) === 200 ? 'allowed' : 'refused';
      want[`publish ${f}`] = expectation(who, f, 'publish') ? 'allowed' : 'refused';
      got[`receive ${f}`] = (await acl(who, topic, 1)) === 200 ? 'allowed' : 'refused';
      want[`receive ${f}`] = expectation(who, f, 'receive') ? 'allowed' : 'refused';
      got[`both ${f}`] = (await acl(who, topic, 3)) === 200 ? 'allowed' : 'refused';
      want[`both ${f}`] = expectation(who, f, 'receive') && expectation(who, f, 'publish') ? 'allowed' : 'refused';
    }
    expect(got).toEqual(want);
  });

  test.each(WHO)('%s: EMQX authorizer', async (who) => {
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const f of ALL) {
      const { topic, filter } = FAMILIES[f];
      got[`subscribe ${f}`] = await emqxAuthz(who, 'subscribe', filter);
      want[`subscribe ${f}`] = expectation(who, f, 'subscribe') ? 'allow' : 'deny';
      if (topic === null) continue;
      got[`publish ${f}`] = await emqxAuthz(who, 'publish', topic);
      want[`publish ${f}`] = expectation(who, f, 'publish') ? 'allow' : 'deny';
    }
    expect(got).toEqual(want);
  });

  test('form parameters (acc as text) answer the same', async () => {
    expect(await acl('siteA', `P/${A}/in/#`, 4, true)).toBe(200);
    expect(await acl('siteA', `P/${B}/in/#`, 4, true)).toBe(403);
    expect(await acl('browserX', `fleetflash/jobs/${X}/status`, 1, true)).toBe(200);
  });

  test("a check under another kind's client id is refused: the id is bound to the principal", async () => {
    const site = { username: A, clientid: `gx-${B}`, topic: `R/${A}/keepalive`, acc: 1 };
    expect(await post('/mosquitto/acl', site)).toEqual({ status: 403, body: { Ok: false, Error: 'client-id' } });
    const service = { ...login.get('service')!, clientid: `gx-${A}` };
    expect((await post('/emqx/authz', { username: service.username, clientid: service.clientid, action: 'publish', topic: 'x/y' })).body).toEqual({ result: 'deny' });
  });

  test('a site retains only its serial (EMQX passes the retain flag)', async () => {
    expect(await emqxAuthz('siteA', 'publish', `N/${A}/system/0/Serial`, true)).toBe('allow');
    expect(await emqxAuthz('siteA', 'publish', `N/${A}/solarcharger/258/FirmwareVersion`, true)).toBe('deny');
    expect(await emqxAuthz('siteA', 'publish', `N/${A}/solarcharger/258/FirmwareVersion`, false)).toBe('allow');
    expect(await emqxAuthz('service', 'publish', `fleetflash/jobs/${X}/status`, true)).toBe('allow');
  });

  test('a browser is known only through its connect (any instance: the scope is in Redis), and only until its token expires', async () => {
    const viewer = login.get('viewer')!;
    const never = { username: viewer.username, clientid: `${viewer.clientid}never`, topic: 'fleetflash/devices/x', acc: 1 };
    expect(await post('/mosquitto/acl', never)).toEqual({ status: 403, body: { Ok: false, Error: 'unknown-client' } });
    // Another user's name with a connected browser's client id.
    expect((await post('/mosquitto/acl', { ...never, clientid: viewer.clientid, username: 'operator-1' })).status).toBe(403);

    const short = tokens.browserToken(viewer.username, 'viewer', [X], 1500);
    const clientid = `${viewer.clientid}short`;
    expect((await post('/mosquitto/user', { username: viewer.username, password: short.token, clientid })).status).toBe(200);
    const readX = { username: viewer.username, clientid, topic: `fleetflash/jobs/${X}/status`, acc: 1 };
    expect((await post('/mosquitto/acl', readX)).status).toBe(200);
    expect((await post('/mosquitto/acl', { ...readX, topic: `fleetflash/jobs/${Y}/status` })).status).toBe(403);
    await waitFor(async () => (await post('/mosquitto/acl', readX)).status === 403, 5000, 'the expired token to lose its access');
    expect(await post('/mosquitto/acl', readX)).toEqual({ status: 403, body: { Ok: false, Error: expect.stringMatching(/^(expired|unknown-client)$/) } });
  });
});

describe('requests', () => {
  test('a malformed request is a 400 with the error body; an unknown path a 404', async () => {
    const bad = await post('/mosquitto/acl', { username: A, clientid: `gx-${A}`, topic: `N/${A}/x`, acc: 7 });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: 'validation_failed', message: expect.stringContaining('acc') } });
    const missing = await post('/emqx/authn', { username: A });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ error: { code: 'validation_failed' } });
    const action = await post('/emqx/authz', { username: A, clientid: `gx-${A}`, topic: 'x', action: 'delete' });
    expect(action.status).toBe(400);
    const unknown = await post('/emqx/other', {});
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
  });

  test('with BROKER_AUTH_TOKEN every call needs the bearer token', async () => {
    const hook = new BrokerAuthHook({
      authenticate: createMqttAuthenticator({
        serviceUser: h.service.config.mqttServiceUser,
        servicePassword: h.service.config.mqttServicePassword,
        sites: h.service.sites,
        tokens,
      }),
      serviceUser: h.service.config.mqttServiceUser,
      redis: h.service.redis,
      keys: createKeys(h.service.config.queuePrefix),
    });
    const token = 'hook-token-0123456789abcdef';
    const server = await startBrokerAuthServer({ hook, port: 0, host: '127.0.0.1', token, logger: pino({ level: 'silent' }) });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const none = await post('/emqx/authn', login.get('siteA')!, { base });
      expect(none).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
      const wrong = await post('/emqx/authn', login.get('siteA')!, { base, headers: { authorization: 'Bearer nope' } });
      expect(wrong.status).toBe(401);
      const right = await post('/emqx/authn', login.get('siteA')!, { base, headers: { authorization: `Bearer ${token}` } });
      expect(right).toEqual({ status: 200, body: { result: 'allow', is_superuser: false } });
    } finally {
      await server.close();
    }
  });
});
