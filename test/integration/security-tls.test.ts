/**
 * TLS end to end: with TLS_CERT_FILE/TLS_KEY_FILE the API and portal are served over HTTPS, browsers
 * connect over WSS, devices over MQTTS, and with MQTT_PLAIN=false there is no plaintext MQTT at all
 * (the service's own client then reaches its broker over TLS, pinned to its certificate). A
 * self-signed certificate is made for the test with the openssl CLI.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { connectMqtt, waitConnected, type MqttClient } from '../../src/mqtt/connect.js';
import { loadServerTls } from '../../src/service/tls.js';
import { configRefusal } from '../helpers/config-refusal.js';
import { makeSelfSignedCert } from '../helpers/self-signed-cert.js';
import { startHarness, type Harness } from '../helpers/service-harness.js';

let dir: string;
let certFile: string;
let keyFile: string;
let ca: Buffer;
let h: Harness;
/** A port free before the start, passed as MQTT_PORT: with MQTT_PLAIN=false nothing may bind it. */
let plainPort: number;
const clients: MqttClient[] = [];

/** A self-signed certificate for localhost / 127.0.0.1 in the test's directory. */
function makeCert(name: string): Promise<{ cert: string; key: string }> {
  return makeSelfSignedCert(dir, name);
}

/** GET over HTTPS trusting `trust` (or the system's CAs when undefined). */
function httpsGet(url: string, trust: Buffer | undefined, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.get(url, { ca: trust, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

function httpsPost(url: string, trust: Buffer, token: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.request(
      url,
      { method: 'POST', ca: trust, agent: false, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function client(url: string, options: Parameters<typeof connectMqtt>[1]): MqttClient {
  const c = connectMqtt(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ff-tls-'));
  ({ cert: certFile, key: keyFile } = await makeCert('fleetflash-test'));
  ca = await readFile(certFile);
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  plainPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  h = await startHarness({
    env: {
      TLS_CERT_FILE: certFile,
      TLS_KEY_FILE: keyFile,
      MQTT_PLAIN: 'false',
      MQTTS_PORT: '0',
      MQTT_PORT: String(plainPort),
    },
  });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('with TLS files and MQTT_PLAIN=false', () => {
  test('the API is HTTPS only, and the service reached its own broker over TLS', async () => {
    expect(h.service.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ready = await httpsGet(`${h.service.httpUrl}/readyz`, ca);
    expect([ready.status, JSON.parse(ready.body)]).toEqual([
      200,
      { ok: true, checks: expect.objectContaining({ mqtt: true }) },
    ]);
    expect(h.service.mqttUrl).toBe(`mqtts://127.0.0.1:${h.service.mqttsPort}`);
    expect(h.service.mqttPort).toBeNull();
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    await expect(fetch(`http://127.0.0.1:${h.service.httpPort}/healthz`)).rejects.toThrow();
    // A client that does not trust the certificate refuses the connection.
    await expect(httpsGet(`${h.service.httpUrl}/healthz`, undefined)).rejects.toMatchObject({
      code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY/),
    });
  });

  test('sites connect over MQTTS; without trusting the certificate, or in plaintext, they cannot', async () => {
    const portalId = 'f1f1f1f1f1f1';
    const [{ secret }] = await h.service.sites.register([{ portalId }], 'test');
    const url = `mqtts://127.0.0.1:${h.service.mqttsPort}`;
    const site = client(url, { clientId: `gx-${portalId}`, username: portalId, password: secret, ca });
    await waitConnected(site);
    await site.subscribeAsync(`R/${portalId}/#`);

    const untrusting = client(url, { clientId: `gx-${portalId}`, username: portalId, password: secret });
    await expect(waitConnected(untrusting)).rejects.toThrow(/self[- ]signed|unable to verify/i);

    const plain = client(`mqtt://127.0.0.1:${h.service.mqttsPort}`, {
      clientId: `gx-${portalId}`,
      username: portalId,
      password: secret,
    });
    const closed = await new Promise<string>((resolve) => {
      plain.once('connect', () => resolve('connected'));
      plain.once('close', () => resolve('closed'));
    });
    expect(closed).toBe('closed');
    expect(site.connected).toBe(true);
  });

  test('no plaintext MQTT listener: the configured MQTT_PORT is not bound', async () => {
    const refused = await new Promise<string>((resolve) => {
      const socket = net.connect(plainPort, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });

  test('browsers get wss:// credentials and connect over WSS', async () => {
    const res = await httpsPost(`${h.service.httpUrl}/api/mqtt-credentials`, ca, h.viewerToken);
    expect(res.status).toBe(200);
    const creds = JSON.parse(res.body) as {
      url: string;
      username: string;
      password: string;
      clientIdPrefix: string;
    };
    expect(creds.url).toBe(`wss://127.0.0.1:${h.service.httpPort}/mqtt`);
    const browser = client(creds.url, {
      clientId: `${creds.clientIdPrefix}tls`,
      username: creds.username,
      password: creds.password,
      ca,
    });
    await waitConnected(browser);
    expect((await browser.subscribeAsync('fleetflash/devices/#')).map((g) => g.qos)).toEqual([0]);
  });
});

describe('TLS configuration errors name the variable', () => {
  test('MQTT_PLAIN=false needs TLS; a cert needs its key and the other way round', () => {
    const base = { SIGNING_SECRET: 'x'.repeat(32), MQTT_SERVICE_PASSWORD: 'p', ROLE: 'broker' };
    const err = (env: Record<string, string>) => configRefusal({ ...base, ...env })?.variable ?? null;
    expect(err({ MQTT_PLAIN: 'false' })).toBe('MQTT_PLAIN');
    expect(err({ MQTT_PLAIN: 'no' })).toBe('MQTT_PLAIN');
    expect(err({ TLS_CERT_FILE: certFile })).toBe('TLS_KEY_FILE');
    expect(err({ TLS_KEY_FILE: keyFile })).toBe('TLS_CERT_FILE');
    expect(err({ MQTT_CONNECT_RATE_PER_MIN: '-1' })).toBe('MQTT_CONNECT_RATE_PER_MIN');
    expect(err({ MQTT_MAX_PACKET_BYTES: '100' })).toBe('MQTT_MAX_PACKET_BYTES');
    expect(err({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, MQTT_PLAIN: 'false' })).toBeNull();
    const c = parseConfig({ ...base });
    expect([
      c.mqttPlain,
      c.mqttsPort,
      c.tls,
      c.mqttConnectRatePerMin,
      c.mqttMaxPacketBytes,
      c.auditMaxEntries,
    ]).toEqual([true, 8883, null, 0, 256 * 1024, 10_000]);
  });

  test('an unreadable file, a non-certificate, or a key of another certificate stop the start', async () => {
    const other = await makeCert('other');
    const garbage = path.join(dir, 'garbage.pem');
    await writeFile(garbage, 'not a certificate');
    const variable = (files: { certFile: string; keyFile: string }) =>
      loadServerTls(files).then(
        () => null,
        (e: unknown) => (e instanceof ConfigError ? e.variable : String(e)),
      );
    expect(await variable({ certFile: path.join(dir, 'missing.pem'), keyFile })).toBe('TLS_CERT_FILE');
    expect(await variable({ certFile: garbage, keyFile })).toBe('TLS_CERT_FILE');
    expect(await variable({ certFile, keyFile: garbage })).toBe('TLS_KEY_FILE');
    expect(await variable({ certFile, keyFile: other.key })).toBe('TLS_KEY_FILE');
    expect(await loadServerTls({ certFile, keyFile })).toMatchObject({
      selfSigned: true,
      fingerprint256: expect.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
    });
  });
});
