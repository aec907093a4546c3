/**
 * Every message routed to a subscriber reaches it once: none lost for arriving out of number order,
 * none sent twice for matching two of its filters. Against the in-memory broker and a clustered one
 * (aedes-persistence-redis and mqemitter-redis on the real Redis, as `BROKER_CLUSTER=redis` runs it).
 *
 * aedes numbers each publish as it enters and used to drop a delivery whose number was not above the
 * last one the subscriber got (its de-duplication of overlapping subscriptions). A QoS 1 publish waits
 * for the offline queue before it is routed, a QoS 0 one does not: published together, the QoS 0
 * message overtook the QoS 1 one, which was then dropped (moscajs/aedes#994): a browser missed a
 * device's terminal record. The sentinel goes after both were routed (its publish starts once both
 * completed), so once it is in, both would have been.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { createBrokerClusterBackend, type BrokerClusterBackend } from '../../src/service/broker-cluster.js';
import { redisOptionsFromUrl } from '../../src/store/redis-connection.js';
import {
  BrokerHarness,
  MessageLog,
  SERVICE_ACCOUNT,
  viewerAccount,
  type Account,
} from '../helpers/broker-harness.js';
import { deleteKeys } from '../helpers/redis-keys.js';

const B = 'd41d8cd98f00';
const JOB = 'j0000000001';
const DEVICES = `fleetflash/jobs/${JOB}/devices`;
const REDIS_URL = 'redis://127.0.0.1:6379';

const accounts: Record<string, Account> = { svc: SERVICE_ACCOUNT, viewer: viewerAccount([JOB]) };

describe.each(['in memory', 'clustered on Redis'] as const)('a broker %s delivers', (kind) => {
  let h: BrokerHarness;
  let backend: BrokerClusterBackend | undefined;
  const prefix = `ff-test-delivery-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    if (kind === 'clustered on Redis') {
      backend = createBrokerClusterBackend(redisOptionsFromUrl(REDIS_URL), prefix, pino({ level: 'silent' }));
    }
    h = await BrokerHarness.start(
      accounts,
      backend ? { persistence: backend.persistence, mq: backend.mq, id: 'delivery-test' } : {},
    );
  });

  afterAll(async () => {
    await h.close();
    await backend?.close();
    if (backend) {
      const redis = new Redis(REDIS_URL);
      await deleteKeys(redis, `${prefix}:*`);
      redis.disconnect();
    }
  });

  /**
   * A service client, one with a persistent session (its QoS 1 messages go through the offline queue,
   * which aedes finds by number when it sends them) and a browser, all subscribed to the job's device
   * records at QoS 1.
   */
  async function subscribers(name: string): Promise<{ logs: MessageLog[]; close: () => Promise<void> }> {
    const service = await h.connect('tcp', 'svc', `svc-order-${name}`);
    const persistent = await h.connect('tcp', 'svc', `svc-order-persistent-${name}`, { clean: false });
    const browser = await h.connect('ws', 'viewer', `web-alice-order${name}`);
    const clients = [service, persistent, browser];
    await Promise.all(clients.map((c) => c.subscribeAsync(`${DEVICES}/+`, { qos: 1 })));
    return {
      logs: clients.map((c) => new MessageLog(c)),
      close: async () => {
        await Promise.all(clients.map((c) => c.endAsync()));
        // Ends the persistent session ([MQTT-3.1.2-6]), or later publishes would be queued for it.
        const again = await h.connect('tcp', 'svc', `svc-order-persistent-${name}`, { clean: true });
        await again.endAsync();
      },
    };
  }

  const publishAsServer = (topic: string, qos: 0 | 1, retain: boolean, payload = `{"qos":${qos}}`) =>
    new Promise<void>((resolve, reject) =>
      h.broker.aedes.publish(
        { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false },
        (err?: Error | null) => (err ? reject(err) : resolve()),
      ),
    );

  it.each([
    ['retained', true],
    ['live', false],
  ] as const)('a %s QoS 1 message the server published just before a QoS 0 one', async (name, retain) => {
    const { logs, close } = await subscribers(`server${name}`);
    const first = `${DEVICES}/${B}.server-${name}-1.0`;
    const second = `${DEVICES}/${B}.server-${name}-0.0`;
    const sentinel = `${DEVICES}/${B}.server-${name}-sentinel.0`;
    // In one task, as the status publisher sends a device's terminal record and another's progress.
    await Promise.all([publishAsServer(first, 1, retain), publishAsServer(second, 0, retain)]);
    await publishAsServer(sentinel, 1, false);
    for (const log of logs) {
      await log.next(sentinel);
      expect(log.live().sort()).toEqual([first, second, sentinel].sort());
    }
    await close();
    if (retain) await Promise.all([first, second].map((topic) => publishAsServer(topic, 1, true, '')));
  });

  it.each([0, 1] as const)('a message matching two of its filters once (QoS %d)', async (qos) => {
    const viewer = await h.connect('ws', 'viewer', `web-alice-overlap${qos}`);
    const log = new MessageLog(viewer);
    await viewer.subscribeAsync([`fleetflash/jobs/${JOB}/#`, `${DEVICES}/+`], { qos });
    const service = await h.connect('tcp', 'svc', `svc-overlap-${qos}`);
    const topic = `${DEVICES}/${B}.overlap-${qos}.0`;
    const sentinel = `fleetflash/jobs/${JOB}/overlap-sentinel-${qos}`;
    await service.publishAsync(topic, '{"state":"running"}', { qos });
    // A second copy would be written right behind the first, so before anything published after it.
    await log.next(topic);
    await service.publishAsync(sentinel, '{}', { qos });
    await log.next(sentinel);
    expect(log.live()).toEqual([topic, sentinel]);
    await Promise.all([viewer.endAsync(), service.endAsync()]);
  });
});
