import { BrokerHarness, SERVICE_ACCOUNT, type Account } from '../helpers/broker-harness.js';

const accounts: Record<string, Account> = { svc: SERVICE_ACCOUNT };

describe('connectMqtt', () => {
  let h: BrokerHarness;

  beforeAll(async () => {
    h = await BrokerHarness.start(accounts);
  });

  afterAll(async () => {
    await h.close();
  });

  // The tests run without DEBUG, so mqtt.js's `mqttjs:client` namespace is off.
  it.each(['tcp', 'ws'] as const)('skips mqtt.js packet tracing when its debug namespace is off (%s), and still works', async (transport) => {
    const client = await h.connect(transport, 'svc', `svc-quiet-${transport}`);
    expect((client.log as { enabled?: boolean }).enabled).toBeUndefined();
    expect(client.log.name).toBe('noop');
    await client.subscribeAsync('t/quiet', { qos: 1 });
    const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
    await client.publishAsync('t/quiet', 'hello', { qos: 1 });
    expect(await got).toBe('hello');
  });

  it("keeps a caller's own log function", async () => {
    const lines: unknown[][] = [];
    const client = await h.connect('tcp', 'svc', 'svc-own-log', { log: (...args: unknown[]) => lines.push(args) });
    await client.publishAsync('t/own', 'x', { qos: 1 });
    expect(lines.length).toBeGreaterThan(0);
  });
});
