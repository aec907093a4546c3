/**
 * The broker's limits against hostile clients over real sockets: packets announced larger than the
 * cap close the connection before they are buffered (TCP, TLS and WebSocket, before and after
 * CONNECT), protocol violations close it too, and every refusal is counted in the broker's stats.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { WebSocket } from 'ws';
import type { Principal } from '../../broker/acl.js';
import { ParserBytes } from '../../broker/parser-buffer.js';
import type { MqttClient } from '../../src/mqtt/connect.js';
import { BrokerHarness, SERVICE_ACCOUNT, viewerAccount, type Account } from '../helpers/broker-harness.js';
import { makeSelfSignedCert } from '../helpers/self-signed-cert.js';
import { siteConnect } from '../helpers/site-connect.js';

const A = 'c0619ab1d2e3';
const MAX_PACKET = 4096;

const accounts: Record<string, Account> = {
  svc: SERVICE_ACCOUNT,
  [A]: { password: 'secret-a', principal: (): Principal => ({ kind: 'site', portalId: A }) },
  viewer: viewerAccount('*'),
};

const connectPacket = mqttPacket.generate(siteConnect(A, 'secret-a'));

/** The fixed header of a PUBLISH announcing `remaining` bytes, and nothing after it. */
function publishHeader(remaining: number): Buffer {
  const bytes = [0x30];
  let n = remaining;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/**
 * Opens a raw TCP connection (TLS with `trust`, the server's certificate) and sends `chunks`, each
 * after the server answered the one before (the first at once); resolves with everything that came
 * back once the server closed the connection.
 */
function rawSession(port: number, chunks: Buffer[], trust?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = trust
      ? tls.connect({ port, host: '127.0.0.1', ca: trust, servername: 'localhost' })
      : net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    const queue = [...chunks];
    const sendNext = () => {
      const next = queue.shift();
      if (next) socket.write(next);
    };
    socket.on('data', (c: Buffer) => {
      got.push(c);
      sendNext();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    socket.on('close', () => resolve(Buffer.concat(got)));
    socket.on(trust ? 'secureConnect' : 'connect', sendNext);
  });
}

async function granted(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters)).map((g) => g.qos);
  } catch (err) {
    const suback = (err as { packet?: { granted?: number[] } }).packet;
    if (!suback?.granted) throw err;
    return suback.granted;
  }
}

describe('broker limits', () => {
  let h: BrokerHarness;

  beforeAll(async () => {
    h = await BrokerHarness.start(accounts, { maxPacketBytes: MAX_PACKET });
  });

  afterAll(async () => {
    await h.close();
  });

  const port = () => Number(new URL(h.url('tcp')).port);

  test('an oversize packet before CONNECT closes the connection at its header', async () => {
    const before = h.broker.stats().connectionsClosed['packet-too-large'];
    // 200 MB announced, 5 bytes sent: the broker must not wait for (or buffer) the rest.
    const answer = await rawSession(port(), [publishHeader(200_000_000)]);
    expect(answer.length).toBe(0);
    expect(h.broker.stats().connectionsClosed['packet-too-large']).toBe(before + 1);
    expect(h.logged('packet too large; connection closed')).toContainEqual(
      expect.objectContaining({ bytes: 200_000_005, max: MAX_PACKET, remoteAddress: '127.0.0.1' }),
    );
  });

  test('after a successful CONNECT, an oversize PUBLISH closes the session (CONNACK first, nothing after)', async () => {
    const before = h.broker.stats();
    const answer = await rawSession(port(), [connectPacket, publishHeader(MAX_PACKET)]);
    // CONNACK 0x20 0x02 0x00 0x00 and nothing else.
    expect([...answer]).toEqual([0x20, 0x02, 0x00, 0x00]);
    const after = h.broker.stats();
    expect(after.connectsAccepted.site).toBe(before.connectsAccepted.site + 1);
    expect(after.connectionsClosed['packet-too-large']).toBe(
      before.connectionsClosed['packet-too-large'] + 1,
    );
  });

  test('a packet just within the cap is accepted and routed', async () => {
    const service = await h.connect('tcp', 'svc', 'svc-size');
    const site = await h.connect('tcp', A, `gx-${A}`);
    await site.subscribeAsync(`R/${A}/#`);
    const got = new Promise<Buffer>((resolve) => site.once('message', (_t, p) => resolve(p)));
    const topic = `R/${A}/big`;
    // Fixed header 1 + 2 length bytes, topic length 2 + topic: the rest is payload.
    const payload = Buffer.alloc(MAX_PACKET - 3 - 2 - topic.length, 0x62);
    await service.publishAsync(topic, payload);
    expect((await got).length).toBe(payload.length);
    await Promise.all([service.endAsync(), site.endAsync()]);
  });

  test('over WebSocket the same cap applies across WebSocket messages', async () => {
    const before = h.broker.stats().connectionsClosed['packet-too-large'];
    const ws = new WebSocket(h.url('ws'), 'mqtt');
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const closed = new Promise((resolve) => ws.once('close', resolve));
    // Two messages, each well under the WebSocket cap; together they announce a 1 MB packet.
    const header = publishHeader(1_000_000);
    ws.send(header.subarray(0, 2));
    ws.send(header.subarray(2));
    await closed;
    expect(h.broker.stats().connectionsClosed['packet-too-large']).toBe(before + 1);
  });

  describe('over TLS', () => {
    let dir: string;
    let cert: Buffer;
    let tlsPort: number;

    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'ff-hardening-'));
      const { cert: certFile, key: keyFile } = await makeSelfSignedCert(dir, 'localhost');
      cert = await readFile(certFile);
      tlsPort = await h.broker.listenTls(0, '127.0.0.1', { cert, key: await readFile(keyFile) });
    });

    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    test('an oversize PUBLISH after CONNECT closes the session: CONNACK first, nothing after', async () => {
      const before = h.broker.stats().connectionsClosed['packet-too-large'];
      const answer = await rawSession(tlsPort, [connectPacket, publishHeader(MAX_PACKET)], cert);
      expect([...answer]).toEqual([0x20, 0x02, 0x00, 0x00]);
      expect(h.broker.stats().connectionsClosed['packet-too-large']).toBe(before + 1);
      expect(h.logged('packet too large; connection closed')).toContainEqual(
        expect.objectContaining({ clientId: `gx-${A}`, bytes: MAX_PACKET + 3, remoteAddress: '127.0.0.1' }),
      );
    });

    test('the TLS socket itself is what aedes reads: guarded in place, no stream in between', async () => {
      const socket = tls.connect({ port: tlsPort, host: '127.0.0.1', ca: cert, servername: 'localhost' });
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      const connack = new Promise((resolve) => socket.once('data', resolve));
      socket.write(connectPacket);
      await connack;
      const clients = (
        h.broker.aedes as unknown as {
          clients: Record<string, { conn: unknown; _parser: { _list: unknown } }>;
        }
      ).clients;
      expect(clients[`gx-${A}`].conn).toBeInstanceOf(tls.TLSSocket);
      // And its parser reads packets from ParserBytes, not a `bl` stream (parser-buffer.ts).
      expect(clients[`gx-${A}`]._parser._list).toBeInstanceOf(ParserBytes);
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.end();
      await closed;
    });

    test('a refused CONNECT still gets its CONNACK before the connection closes', async () => {
      const wrong = mqttPacket.generate(siteConnect(A, 'guess'));
      // Return code 4: bad user name or password.
      expect([...(await rawSession(tlsPort, [wrong], cert))]).toEqual([0x20, 0x02, 0x00, 0x04]);
    });
  });

  test('a protocol violation (reserved header flags) closes the connection and is counted', async () => {
    const before = h.broker.stats().connectionsClosed.malformed;
    // SUBSCRIBE must have flags 0b0010 ([MQTT-3.8.1-1]); 0x80 has 0b0000.
    const answer = await rawSession(port(), [connectPacket, Buffer.from([0x80, 0x02, 0x00, 0x01])]);
    expect([...answer.subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]);
    expect(h.broker.stats().connectionsClosed.malformed).toBe(before + 1);
  });

  test('refusals are counted by reason: anonymous, wrong site secret, forbidden publish and subscribe', async () => {
    const before = h.broker.stats();
    expect(await h.refusal(h.client('tcp', { clientId: 'anon' }))).toBe(5);
    expect(await h.refusal(h.client('tcp', { clientId: `gx-${A}`, username: A, password: 'guess' }))).toBe(4);
    expect(await h.refusal(h.client('tcp', { clientId: 'x', username: 'svc', password: 'guess' }))).toBe(4);
    const site = await h.connect('tcp', A, `gx-${A}`);
    await site.publishAsync('N/d41d8cd98f00/system/0/Serial', '{"value":1}', { qos: 2 });
    expect(await granted(site, ['#', `R/${A}/#`])).toEqual([128, 0]);
    await site.endAsync();
    const after = h.broker.stats();
    expect(after.connectsRefused.anonymous - before.connectsRefused.anonymous).toBe(1);
    expect(after.connectsRefused['bad-credentials'] - before.connectsRefused['bad-credentials']).toBe(2);
    expect(after.siteAuthFailures - before.siteAuthFailures).toBe(1);
    expect(after.publishesRefused.topic - before.publishesRefused.topic).toBe(1);
    expect(after.subscriptionsRefused - before.subscriptionsRefused).toBe(1);
    expect(after.connectsAccepted.site - before.connectsAccepted.site).toBe(1);
  });
});

describe('retained messages', () => {
  let h: BrokerHarness;

  beforeAll(async () => {
    h = await BrokerHarness.start(accounts);
  });

  afterAll(async () => {
    await h.close();
  });

  test("a site's retain flag counts only on its own Serial: anything else is delivered live, never stored", async () => {
    const live = await h.connect('tcp', 'svc', 'svc-live');
    await live.subscribeAsync(`N/${A}/#`);
    const got: { topic: string; retain: boolean }[] = [];
    live.on('message', (topic, _p, packet) => got.push({ topic, retain: packet.retain }));
    const site = await h.connect('tcp', A, `gx-${A}`);
    const before = h.broker.stats().retainStripped;
    await site.publishAsync(`N/${A}/platform/0/Firmware/State`, '{"value":1000}', { qos: 2, retain: true });
    await site.publishAsync(`N/${A}/system/0/Serial`, `{"value":"${A}"}`, { qos: 2, retain: true });
    expect(h.broker.stats().retainStripped).toBe(before + 1);

    // A subscriber that comes later gets the Serial from the store, and nothing else.
    const later = await h.connect('tcp', 'svc', 'svc-later');
    const stored: string[] = [];
    later.on('message', (topic, _p, packet) => {
      if (packet.retain) stored.push(topic);
    });
    const serial = new Promise<void>((resolve) =>
      later.on('message', (topic) => topic.endsWith('/Serial') && resolve()),
    );
    await later.subscribeAsync([`N/${A}/platform/0/Firmware/State`, `N/${A}/system/0/Serial`]);
    await serial;
    expect(stored).toEqual([`N/${A}/system/0/Serial`]);
    // Both were delivered to the subscriber that was there.
    expect(got.map((m) => m.topic)).toEqual([`N/${A}/platform/0/Firmware/State`, `N/${A}/system/0/Serial`]);
    await Promise.all([live.endAsync(), site.endAsync(), later.endAsync()]);
  });
});

describe('broker payload limit', () => {
  let h: BrokerHarness;

  beforeAll(async () => {
    h = await BrokerHarness.start(accounts, { maxPayloadBytes: 1024, maxPacketBytes: 64 * 1024 });
  });

  afterAll(async () => {
    await h.close();
  });

  test("a site's publish over the payload limit is acknowledged, dropped and counted; the service's is not limited", async () => {
    const service = await h.connect('tcp', 'svc', 'svc-payload');
    const seen: string[] = [];
    service.on('message', (topic) => seen.push(topic));
    await service.subscribeAsync(`N/${A}/#`);
    const site = await h.connect('tcp', A, `gx-${A}`);
    const before = h.broker.stats().publishesRefused['payload-too-large'];
    const first = new Promise<void>((resolve) => service.once('message', () => resolve()));
    await site.publishAsync(`N/${A}/big`, Buffer.alloc(1025, 0x61), { qos: 2 });
    await site.publishAsync(`N/${A}/small`, Buffer.alloc(1024, 0x61), { qos: 2 });
    await first;
    expect(seen).toEqual([`N/${A}/small`]);
    expect(h.broker.stats().publishesRefused['payload-too-large']).toBe(before + 1);
    const second = new Promise<void>((resolve) => service.once('message', () => resolve()));
    await service.publishAsync(`N/${A}/from-service`, Buffer.alloc(4096, 0x61), { qos: 1 });
    await second;
    expect(seen).toEqual([`N/${A}/small`, `N/${A}/from-service`]);
    expect(site.connected).toBe(true);
    await Promise.all([service.endAsync(), site.endAsync()]);
  });
});
