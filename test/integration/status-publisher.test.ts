/**
 * StatusPublisher against the real embedded broker: flush() resolves once every publish made before
 * it is acknowledged (what shutdown and the retained restorer rely on), a stale record is never sent
 * after a newer one, and a failed publish is logged without holding flush() up.
 */
import { pino } from 'pino';
import type { MqttClient } from 'mqtt';
import { jobDeviceTopic, type ExecutionRecord, type JobEvent } from '../../src/protocol/index.js';
import { StatusPublisher, type StatusTopicKind } from '../../src/status/status-publisher.js';
import { BrokerHarness, type LogLine } from '../helpers/broker-harness.js';

const T0 = '2026-12-05T00:00:00.000Z';

function record(seq: number, progress: number): ExecutionRecord {
  return {
    executionId: 'jabc12345.c0619ab1d2e3.solarcharger.258',
    jobId: 'jabc12345',
    deviceId: 'c0619ab1d2e3.solarcharger.258',
    state: 'in_progress',
    phase: 'downloading',
    progress,
    fromVersion: 'v1.57',
    toVersion: 'v1.61',
    error: null,
    attempt: 1,
    seq,
    installSentAt: T0,
    installAccepted: true,
    phaseStartedAt: T0,
    createdAt: T0,
    startedAt: T0,
    updatedAt: T0,
    finishedAt: null,
  };
}

function event(seq: number): JobEvent {
  return { seq, ts: T0, jobId: 'jabc12345', deviceId: null, level: 'info', message: `line ${seq}` };
}

let broker: BrokerHarness;
let client: MqttClient;
const acked: StatusTopicKind[] = [];
const logs: LogLine[] = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });

beforeAll(async () => {
  broker = await BrokerHarness.start({ svc: { password: 'pw', principal: () => ({ kind: 'service', name: 'svc' }) } });
  client = await broker.connect('tcp', 'svc', 'status-publisher-test');
});

afterAll(async () => {
  await broker.close();
});

beforeEach(() => {
  acked.length = 0;
  logs.length = 0;
});

/** The retained message on `topic` as a new subscriber gets it. */
async function retained(topic: string): Promise<ExecutionRecord> {
  const reader = await broker.connect('tcp', 'svc', `reader-${Math.random().toString(16).slice(2)}`);
  const got = new Promise<ExecutionRecord>((resolve) =>
    reader.on('message', (_t, payload) => resolve(JSON.parse(payload.toString()) as ExecutionRecord)),
  );
  await reader.subscribeAsync(topic, { qos: 1 });
  const rec = await got;
  await reader.endAsync();
  return rec;
}

test('flush() resolves only when every publish made before it is acknowledged', async () => {
  const publisher = new StatusPublisher(client, logger, 100, (kind) => acked.push(kind));
  for (let i = 1; i <= 50; i++) publisher.execution(record(i, i));
  for (let i = 1; i <= 20; i++) publisher.event(event(i));
  expect(acked).toHaveLength(0);
  await publisher.flush();
  expect(acked.filter((k) => k === 'execution')).toHaveLength(50);
  expect(acked.filter((k) => k === 'event')).toHaveLength(20);
  expect((await retained(jobDeviceTopic('jabc12345', 'c0619ab1d2e3.solarcharger.258'))).seq).toBe(50);
  // Nothing in flight: at once.
  await publisher.flush();
});

test('a record older than one already published is not sent', async () => {
  const publisher = new StatusPublisher(client, logger, 100, (kind) => acked.push(kind));
  publisher.execution(record(100, 60));
  publisher.execution(record(99, 55));
  publisher.execution(record(100, 60));
  await publisher.flush();
  expect(acked).toEqual(['execution']);
  expect((await retained(jobDeviceTopic('jabc12345', 'c0619ab1d2e3.solarcharger.258'))).seq).toBe(100);
});

test('a publish that fails is logged and does not hold flush() up', async () => {
  const gone = await broker.connect('tcp', 'svc', 'status-publisher-gone');
  await gone.endAsync();
  const publisher = new StatusPublisher(gone, logger, 100, (kind) => acked.push(kind));
  publisher.execution(record(1, 0));
  await publisher.flush();
  expect(acked).toEqual([]);
  expect(logs.filter((l) => l.msg === 'status publish failed')).toHaveLength(1);
});
