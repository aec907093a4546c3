/**
 * The embedded broker against real mqtt.js clients over TCP and WebSocket.
 *
 * "Never receives" is proven without sleeping: the forbidden message goes first, then a sentinel the
 * receiver may get, on the same path; once the sentinel is in, the forbidden one would have been too.
 * Refused publishes are sent with QoS 1 or 2 so the test also sees them acknowledged ([MQTT-3.3.5-2]).
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import mqttPacket from 'mqtt-packet';
import { WebSocket } from 'ws';
import type { Principal } from '../../broker/acl.js';
import type { MqttClient } from '../../src/mqtt/connect.js';
import { BrokerHarness, MessageLog, SERVICE_ACCOUNT, viewerAccount, type Account } from '../helpers/broker-harness.js';

const A = 'c0619ab1d2e3';
const B = 'd41d8cd98f00';
const JOB = 'j0000000001';
const OTHER_JOB = 'j0000000002';

function account(password: string, principal: () => Principal): Account {
  return { password, principal };
}

const accounts: Record<string, Account> = {
  svc: SERVICE_ACCOUNT,
  [A]: account('secret-a', () => ({ kind: 'site', portalId: A })),
  [B]: account('secret-b', () => ({ kind: 'site', portalId: B })),
  viewer: viewerAccount([JOB]),
  shortlived: account('token-2', () => ({
    kind: 'browser',
    subject: 'bob',
    role: 'viewer',
    jobs: '*',
    expiresAt: Date.now() + 500,
  })),
};

/** The SUBACK return codes for `filters`: 0–2 granted QoS, 128 failure (MQTT 3.1.1 §3.9.3). */
async function granted(client: MqttClient, filters: string | string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters)).map((grant) => grant.qos);
  } catch (err) {
    const suback = (err as { packet?: { granted?: number[] } }).packet;
    if (!suback?.granted) throw err;
    return suback.granted;
  }
}

/** A message whose payload says it must never be seen. */
const FORBIDDEN = Buffer.from('{"value":"forbidden"}');

describe('embedded broker', () => {
  let h: BrokerHarness;

  beforeAll(async () => {
    h = await BrokerHarness.start(accounts);
  });

  afterAll(async () => {
    await h.close();
  });

  describe('connect', () => {
    it('refuses a client without credentials', async () => {
      expect(await h.refusal(h.client('tcp', { clientId: 'svc-anon' }))).toBe(5);
    });

    it('refuses a wrong password', async () => {
      const client = h.client('tcp', { clientId: `gx-${A}`, username: A, password: 'guess' });
      expect(await h.refusal(client)).toBe(4);
    });

    it("refuses a site using another site's client id, or a service-style one", async () => {
      const spoof = h.client('tcp', { clientId: `gx-${B}`, username: A, password: 'secret-a' });
      expect(await h.refusal(spoof)).toBe(2);
      const other = h.client('tcp', { clientId: 'worker-1', username: A, password: 'secret-a' });
      expect(await h.refusal(other)).toBe(2);
      expect(h.logged('connection refused').some((l) => l.clientId === `gx-${B}` && l.returnCode === 2)).toBe(
        true,
      );
    });

    it('refuses a will on a topic the client may not publish itself', async () => {
      const client = h.client('tcp', {
        clientId: `gx-${A}`,
        username: A,
        password: 'secret-a',
        will: {
          topic: `N/${B}/system/0/Connected`,
          payload: Buffer.from('{"value":0}'),
          qos: 0,
          retain: true,
        },
      });
      expect(await h.refusal(client)).toBe(5);
    });

    it('counts connected clients by kind', async () => {
      const before = h.broker.clientsByKind();
      const site = await h.connect('tcp', A, `gx-${A}`);
      const browser = await h.connect('ws', 'viewer', 'web-alice-count');
      expect(h.broker.clientsByKind()).toEqual({
        ...before,
        site: before.site + 1,
        browser: before.browser + 1,
      });
      expect(h.broker.connectedClients()).toBeGreaterThanOrEqual(2);
      await Promise.all([site.endAsync(), browser.endAsync()]);
    });
  });

  describe('sites', () => {
    it("cannot subscribe to another site's R/ topics and receive nothing from them", async () => {
      const service = await h.connect('tcp', 'svc', 'svc-r');
      const site = await h.connect('tcp', A, `gx-${A}`);
      const received = new MessageLog(site);

      expect(await granted(site, `R/${B}/#`)).toEqual([128]);
      expect(await granted(site, 'R/+/keepalive')).toEqual([128]);
      // In one SUBSCRIBE the allowed filter is granted and the other fails, and the connection stays up.
      expect(await granted(site, [`R/${A}/#`, `R/${B}/#`])).toEqual([0, 128]);

      await service.publishAsync(`R/${B}/keepalive`, FORBIDDEN);
      await service.publishAsync(`R/${A}/keepalive`, '');
      await received.next(`R/${A}/keepalive`);
      expect(received.topics()).toEqual([`R/${A}/keepalive`]);
      expect(
        h.logged('subscription refused').some((l) => l.clientId === `gx-${A}` && l.filter === `R/${B}/#`),
      ).toBe(true);
      await Promise.all([service.endAsync(), site.endAsync()]);
    });

    it("publishing on another site's N/ topics is acknowledged, dropped and logged", async () => {
      const service = await h.connect('tcp', 'svc', 'svc-n');
      await service.subscribeAsync('#');
      const seen = new MessageLog(service);
      const site = await h.connect('tcp', A, `gx-${A}`);

      await site.publishAsync(`N/${B}/system/0/Serial`, FORBIDDEN, { qos: 1 });
      await site.publishAsync(`N/${A}/system/0/Serial`, `{"value":"${A}"}`, { qos: 1 });
      await seen.next(`N/${A}/system/0/Serial`);
      expect(seen.live()).toEqual([`N/${A}/system/0/Serial`]);
      expect(site.connected).toBe(true);
      expect(h.logged('publish refused')).toContainEqual(
        expect.objectContaining({ clientId: `gx-${A}`, kind: 'site', topic: `N/${B}/system/0/Serial` }),
      );
      await Promise.all([service.endAsync(), site.endAsync()]);
    });

    it('cannot publish on fleetflash/ topics, retained or not', async () => {
      const device = `fleetflash/devices/${A}.platform.0`;
      const service = await h.connect('tcp', 'svc', 'svc-ff');
      await service.publishAsync(device, '{"version":"v3.70"}', { retain: true, qos: 1 });
      await service.subscribeAsync(`fleetflash/jobs/${JOB}/#`);
      const seen = new MessageLog(service);
      const site = await h.connect('tcp', A, `gx-${A}`);

      await site.publishAsync(`fleetflash/jobs/${JOB}/status`, FORBIDDEN, { qos: 2 });
      await site.publishAsync(device, FORBIDDEN, { qos: 2, retain: true });
      await service.publishAsync(`fleetflash/jobs/${JOB}/events`, '{"seq":1}');
      await seen.next(`fleetflash/jobs/${JOB}/events`);
      expect(seen.topics()).toEqual([`fleetflash/jobs/${JOB}/events`]);

      // The retained slot holds one message per topic: the site's must not have replaced the service's.
      const later = await h.connect('tcp', 'svc', 'svc-ff-later');
      const retained = new MessageLog(later);
      await later.subscribeAsync(device);
      expect((await retained.next(device)).payload.toString()).toBe('{"version":"v3.70"}');
      await Promise.all([service.endAsync(), site.endAsync(), later.endAsync()]);
    });

    it('relays garbage payloads on its own topics, drops oversize ones, and survives protocol garbage', async () => {
      const service = await h.connect('tcp', 'svc', 'svc-garbage');
      await service.subscribeAsync(`N/${A}/#`);
      const seen = new MessageLog(service);
      const site = await h.connect('tcp', A, `gx-${A}`);

      const garbage = randomBytes(512);
      await site.publishAsync(`N/${A}/garbage`, garbage, { qos: 1 });
      expect((await seen.next(`N/${A}/garbage`)).payload.equals(garbage)).toBe(true);

      await site.publishAsync(`N/${A}/huge`, Buffer.alloc(64 * 1024 + 1, 0x7b), { qos: 1 });
      await site.publishAsync(`N/${A}/after`, '{"value":1}', { qos: 1 });
      await seen.next(`N/${A}/after`);
      expect(seen.topics()).toEqual([`N/${A}/garbage`, `N/${A}/after`]);
      expect(h.logged('publish refused').some((l) => l.topic === `N/${A}/huge`)).toBe(true);

      // Not MQTT at all: the broker drops that connection and carries on.
      const raw = net.createConnection({ host: '127.0.0.1', port: Number(new URL(h.url('tcp')).port) });
      const closed = new Promise((resolve) => raw.once('close', resolve));
      raw.on('error', () => undefined);
      raw.write(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), randomBytes(64)]));
      await closed;
      await site.publishAsync(`N/${A}/still-alive`, '{"value":1}', { qos: 1 });
      await seen.next(`N/${A}/still-alive`);
      await Promise.all([service.endAsync(), site.endAsync()]);
    });
  });

  describe('browsers over WebSocket', () => {
    it("gets its job's retained state at once and nothing of other jobs", async () => {
      const service = await h.connect('tcp', 'svc', 'svc-browser');
      await service.publishAsync(`fleetflash/jobs/${JOB}/status`, '{"state":"in_progress"}', {
        retain: true,
        qos: 1,
      });
      await service.publishAsync(`fleetflash/jobs/${OTHER_JOB}/status`, FORBIDDEN, { retain: true, qos: 1 });

      const browser = await h.connect('ws', 'viewer', 'web-alice-1');
      const received = new MessageLog(browser);
      await browser.subscribeAsync(`fleetflash/jobs/${JOB}/#`);
      const status = await received.next(`fleetflash/jobs/${JOB}/status`);
      expect(status).toMatchObject({ retain: true });
      expect(status.payload.toString()).toBe('{"state":"in_progress"}');

      expect(
        await granted(browser, [`fleetflash/jobs/${OTHER_JOB}/#`, '#', 'fleetflash/jobs/+/status']),
      ).toEqual([128, 128, 128]);

      await service.publishAsync(`fleetflash/jobs/${OTHER_JOB}/events`, FORBIDDEN);
      await service.publishAsync(`fleetflash/jobs/${JOB}/events`, '{"seq":1}');
      await received.next(`fleetflash/jobs/${JOB}/events`);
      expect(received.topics()).toEqual([`fleetflash/jobs/${JOB}/status`, `fleetflash/jobs/${JOB}/events`]);
      await Promise.all([service.endAsync(), browser.endAsync()]);
    });

    it('cannot publish anything', async () => {
      const service = await h.connect('tcp', 'svc', 'svc-browser-pub');
      await service.subscribeAsync('#');
      const seen = new MessageLog(service);
      const browser = await h.connect('ws', 'viewer', 'web-alice-2');

      // QoS 2: by PUBCOMP the broker has finished with the message, routed or not.
      await browser.publishAsync(`fleetflash/jobs/${JOB}/status`, FORBIDDEN, { qos: 2, retain: true });
      await browser.publishAsync(`N/${A}/system/0/Serial`, FORBIDDEN, { qos: 2 });
      await service.publishAsync('sentinel', '');
      await seen.next('sentinel');
      expect(seen.live()).toEqual(['sentinel']);
      expect(h.logged('publish refused')).toContainEqual(
        expect.objectContaining({
          clientId: 'web-alice-2',
          kind: 'browser',
          topic: `N/${A}/system/0/Serial`,
        }),
      );
      await Promise.all([service.endAsync(), browser.endAsync()]);
    });

    it('is disconnected when its token expires', async () => {
      const before = h.broker.clientsByKind().browser;
      const browser = await h.connect('ws', 'shortlived', 'web-bob-1');
      expect(h.broker.clientsByKind().browser).toBe(before + 1);
      await new Promise<void>((resolve) => browser.once('close', () => resolve()));
      expect(browser.connected).toBe(false);
      expect(h.broker.clientsByKind().browser).toBe(before);
      expect(h.logged('browser token expired; closing connection', 30)).toHaveLength(1);
    });

    it('sends the packets of a burst in fewer WebSocket messages, every one intact and in order', async () => {
      const ws = new WebSocket(h.url('ws'), 'mqtt');
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const parser = mqttPacket.parser();
      const packets: mqttPacket.Packet[] = [];
      parser.on('packet', (packet) => packets.push(packet));
      let messages = 0;
      ws.on('message', (data: Buffer) => {
        messages++;
        parser.parse(data);
      });
      const nextPacket = async (cmd: string): Promise<mqttPacket.Packet> => {
        for (;;) {
          const packet = packets.find((p) => p.cmd === cmd);
          if (packet) return packet;
          await new Promise((resolve) => ws.once('message', resolve));
        }
      };
      const send = (packet: mqttPacket.Packet) => ws.send(mqttPacket.generate(packet));
      send({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        keepalive: 60,
        clientId: 'web-alice-3',
        username: 'viewer',
        password: Buffer.from('token-1'),
      });
      expect(await nextPacket('connack')).toMatchObject({ returnCode: 0 });
      send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `fleetflash/jobs/${JOB}/events`, qos: 0 }] });
      expect(await nextPacket('suback')).toMatchObject({ granted: [0] });
      packets.length = 0;
      messages = 0;

      // 200 records published in one burst: aedes delivers them to the browser within an iteration or two.
      const service = await h.connect('tcp', 'svc', 'svc-burst');
      const sent = Array.from({ length: 200 }, (_, i) => `{"seq":${i}}`);
      for (const payload of sent) service.publish(`fleetflash/jobs/${JOB}/events`, payload);
      while (packets.length < sent.length) await new Promise((resolve) => ws.once('message', resolve));

      expect(packets.map((p) => (p.cmd === 'publish' ? p.payload.toString() : p.cmd))).toEqual(sent);
      // One message per packet before: ws' stream sent each write as its own message.
      expect(messages).toBeLessThanOrEqual(sent.length / 4);
      ws.terminate();
      await service.endAsync();
    });

    it('leaves upgrades on other paths to other listeners', async () => {
      const onUpgrade = (req: { url?: string }, socket: net.Socket) => {
        if (req.url === '/other') socket.end('HTTP/1.1 418 I am a teapot\r\nConnection: close\r\n\r\n');
      };
      h.httpServer.on('upgrade', onUpgrade);
      const ws = new WebSocket(h.url('ws', '/other'));
      ws.on('error', () => undefined);
      const status = await new Promise((resolve) => {
        ws.once('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode);
        });
        ws.once('open', () => resolve('opened'));
      });
      if (status === 'opened') ws.terminate();
      h.httpServer.off('upgrade', onUpgrade);
      expect(status).toBe(418);
    });
  });

  describe('the service', () => {
    it("may subscribe to everything and publish on any site's topics", async () => {
      const service = await h.connect('tcp', 'svc', 'svc-all');
      const seen = new MessageLog(service);
      expect(await granted(service, ['#', '$SYS/#', 'N/+/system/0/Serial'])).toEqual([0, 0, 0]);
      const site = await h.connect('tcp', B, `gx-${B}`);
      const siteSeen = new MessageLog(site);
      await site.subscribeAsync([`R/${B}/#`, `W/${B}/#`, `P/${B}/in/+`]);

      await service.publishAsync(`R/${B}/keepalive`, '{"keepalive-options":["suppress-republish"]}');
      await service.publishAsync(
        `P/${B}/in/rpc-1`,
        '{"method":"firmware.status","params":{"device":"platform/0"}}',
      );
      await service.publishAsync(`N/${B}/system/0/Serial`, `{"value":"${B}"}`);
      await siteSeen.next(`P/${B}/in/rpc-1`);
      expect(siteSeen.topics()).toEqual([`R/${B}/keepalive`, `P/${B}/in/rpc-1`]);
      await seen.next(`N/${B}/system/0/Serial`);
      await Promise.all([service.endAsync(), site.endAsync()]);
    });

    it('delivers a retained message to a subscriber that comes later', async () => {
      const first = await h.connect('tcp', 'svc', 'svc-retain-1');
      await first.publishAsync(`fleetflash/jobs/${JOB}/devices/${B}.platform.0`, '{"seq":7}', {
        retain: true,
        qos: 1,
      });
      await first.endAsync();

      const later = await h.connect('tcp', 'svc', 'svc-retain-2');
      const received = new MessageLog(later);
      await later.subscribeAsync(`fleetflash/jobs/${JOB}/devices/+`);
      const record = await received.next(`fleetflash/jobs/${JOB}/devices/${B}.platform.0`);
      expect(record).toMatchObject({ retain: true });
      expect(record.payload.toString()).toBe('{"seq":7}');
      await later.endAsync();
    });

    it.each(['tcp', 'ws'] as const)(
      'sends retained text and binary payloads back byte for byte (%s)',
      async (transport) => {
        // Kept as a string (text) or a buffer of its own (anything else): either way the same bytes.
        const text = Buffer.from('{"value":"Grüße 😀","n":1}');
        const binary = Buffer.from([0x00, 0xff, 0xc3, 0x28, 0x80, 0x7b]);
        const topic = (kind: string) => `fleetflash/jobs/${JOB}/devices/${B}.${kind}-${transport}.0`;
        const service = await h.connect('tcp', 'svc', `svc-bytes-${transport}`);
        await service.publishAsync(topic('text'), text, { retain: true, qos: 1 });
        await service.publishAsync(topic('binary'), binary, { retain: true, qos: 1 });
        const later =
          transport === 'tcp'
            ? await h.connect('tcp', 'svc', 'svc-bytes-later')
            : await h.connect('ws', 'viewer', 'web-alice-bytes');
        const received = new MessageLog(later);
        await later.subscribeAsync(`fleetflash/jobs/${JOB}/devices/+`);
        expect((await received.next(topic('text'))).payload).toEqual(text);
        expect((await received.next(topic('binary'))).payload).toEqual(binary);
        await Promise.all([service.endAsync(), later.endAsync()]);
      },
    );

    it.each(['tcp', 'ws'] as const)(
      'keeps a filter unsubscribed and subscribed again in one write subscribed (%s)',
      async (transport) => {
        // aedes handles the packets of one read concurrently; its UNSUBSCRIBE used to complete after
        // the SUBSCRIBE behind it and take the new subscription with it (moscajs/aedes#469).
        const filter = `fleetflash/jobs/${JOB}/devices/resub-${transport}`;
        const viewer = await h.connect(transport, 'viewer', `web-alice-resub${transport}`);
        const received = new MessageLog(viewer);
        await viewer.subscribeAsync(filter);
        // Both packets leave in one write, as the service's coalesced socket and a browser's
        // same-tick view change send them.
        viewer.stream.cork();
        const both = Promise.all([viewer.unsubscribeAsync(filter), viewer.subscribeAsync(filter)]);
        setImmediate(() => viewer.stream.uncork());
        await both;
        const service = await h.connect('tcp', 'svc', `svc-resub-${transport}`);
        await service.publishAsync(filter, '{"state":"running"}', { qos: 1 });
        expect((await received.next(filter)).payload.toString()).toBe('{"state":"running"}');
        await Promise.all([viewer.endAsync(), service.endAsync()]);
      },
    );
  });

  describe('subscribers in the same process', () => {
    it('get the retained messages at once, then what is routed to their filters, and nothing after unsubscribing', async () => {
      const siteA = await h.connect('tcp', A, `gx-${A}`);
      const siteB = await h.connect('tcp', B, `gx-${B}`);
      await siteA.publishAsync(`N/${A}/system/0/Serial`, `{"value":"${A}"}`, { retain: true, qos: 1 });

      const local = new MessageLog();
      const unsubscribe = await h.broker.subscribe(['N/+/system/0/Serial', 'N/+/+/+/ProductId'], (topic, payload) =>
        local.add({ topic, payload, retain: false }),
      );
      // Handed over before the subscribe resolved, as a SUBSCRIBE's retained messages come first.
      expect(local.topics()).toEqual([`N/${A}/system/0/Serial`]);
      expect(local.messages[0].payload.toString()).toBe(`{"value":"${A}"}`);

      await siteB.publishAsync(`N/${B}/solarcharger/256/ProductName`, '{"value":"not subscribed"}', { qos: 1 });
      // Refused by the ACL (another site's topic): acknowledged, never routed, so never seen here.
      await siteA.publishAsync(`N/${B}/solarcharger/256/ProductId`, FORBIDDEN, { qos: 1 });
      await siteB.publishAsync(`N/${B}/solarcharger/256/ProductId`, '{"value":41056}', { qos: 1 });
      const product = await local.next(`N/${B}/solarcharger/256/ProductId`);
      expect(product.payload.toString()).toBe('{"value":41056}');
      expect(local.topics()).toEqual([`N/${A}/system/0/Serial`, `N/${B}/solarcharger/256/ProductId`]);

      await unsubscribe();
      const service = await h.connect('tcp', 'svc', 'svc-local-sentinel');
      const seen = new MessageLog(service);
      await service.subscribeAsync('N/+/+/+/ProductId');
      await siteB.publishAsync(`N/${B}/solarcharger/257/ProductId`, '{"value":41057}', { qos: 1 });
      await seen.next(`N/${B}/solarcharger/257/ProductId`);
      expect(local.messages).toHaveLength(2);
      await siteA.publishAsync(`N/${A}/system/0/Serial`, '', { retain: true, qos: 1 });
      await Promise.all([siteA.endAsync(), siteB.endAsync(), service.endAsync()]);
    });
  });
});

describe('embedded broker with a connect rate limit', () => {
  let h: BrokerHarness;

  beforeAll(async () => {
    h = await BrokerHarness.start(accounts, { connectRatePerMinute: 2 });
  });

  afterAll(async () => {
    await h.close();
  });

  it('refuses connects past the per-address budget with "server unavailable"', async () => {
    await h.connect('tcp', 'svc', 'svc-rate-1');
    await h.connect('ws', 'svc', 'svc-rate-2');
    expect(
      await h.refusal(h.client('tcp', { clientId: 'svc-rate-3', username: 'svc', password: 'svc-secret' })),
    ).toBe(3);
    expect(h.logged('connection refused').some((l) => l.returnCode === 3)).toBe(true);
  });
});
