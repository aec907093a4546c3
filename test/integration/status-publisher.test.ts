/**
 * StatusPublisher against the real embedded broker, through a service MQTT client only and with
 * retained records published in-process as the broker itself: flush() resolves once every QoS 1
 * publish made before it is acknowledged (what shutdown and the retained restorer rely on), a stale
 * record is never sent after a newer one, live records go at QoS 0 and terminal ones at QoS 1, a
 * subscriber gets every record and log line in order (also when they were published while the
 * connection was down), and a failed publish is logged without holding flush() up. acknowledged()
 * (what a worker waits for before it completes an ended execution's queue job) tells whether
 * everything since a mark went through.
 */
import { pino } from 'pino';
import type { MqttClient } from 'mqtt';
import { jobDeviceTopic, type ExecutionRecord, type JobEvent } from '../../src/protocol/index.js';
import { StatusPublisher, type StatusTopicKind } from '../../src/status/status-publisher.js';
import { embeddedBrokerSink, type StatusSink } from '../../src/status/status-sink.js';
import { BrokerHarness, type LogLine } from '../helpers/broker-harness.js';

const T0 = '2026-12-05T00:00:00.000Z';

/** An execution record; in progress unless `state` says otherwise (a terminal one goes at QoS 1, the others at 0). */
function record(seq: number, progress: number, state: ExecutionRecord['state'] = 'in_progress'): ExecutionRecord {
  return {
    executionId: 'jabc12345.c0619ab1d2e3.solarcharger.258',
    jobId: 'jabc12345',
    deviceId: 'c0619ab1d2e3.solarcharger.258',
    state,
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
const logger = pino(
  { level: 'warn' },
  { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) },
);

beforeAll(async () => {
  broker = await BrokerHarness.start({
    svc: { password: 'pw', principal: () => ({ kind: 'service', name: 'svc' }) },
  });
  client = await broker.connect('tcp', 'svc', 'status-publisher-test');
});

afterAll(async () => {
  await broker.close();
});

beforeEach(() => {
  acked.length = 0;
  logs.length = 0;
});

/** The retained message on `topic` as a new subscriber gets it, as text. */
async function retainedText(topic: string): Promise<string> {
  const reader = await broker.connect('tcp', 'svc', `reader-${Math.random().toString(16).slice(2)}`);
  const got = new Promise<string>((resolve) =>
    reader.on('message', (_t, payload) => resolve(payload.toString())),
  );
  await reader.subscribeAsync(topic, { qos: 1 });
  const text = await got;
  await reader.endAsync();
  return text;
}

/** The retained record on `topic` as a new subscriber gets it. */
async function retained(topic: string): Promise<ExecutionRecord> {
  return JSON.parse(await retainedText(topic)) as ExecutionRecord;
}

describe.each([
  ['a service MQTT client', (): StatusSink => client],
  [
    'the broker itself for retained records, in-process',
    (): StatusSink => embeddedBrokerSink(broker.broker.aedes),
  ],
] as const)('through %s', (_name, retainedSink) => {
  test('flush() resolves only when every QoS 1 publish made before it is acknowledged', async () => {
    const publisher = new StatusPublisher(client, logger, 100, (kind) => acked.push(kind), retainedSink());
    for (let i = 1; i < 50; i++) publisher.execution(record(i, i));
    publisher.execution(record(50, 100, 'succeeded'));
    for (let i = 1; i <= 20; i++) publisher.event(event(i));
    expect(acked).toHaveLength(0);
    await publisher.flush();
    // Only QoS 1 publishes are acknowledged: the terminal record, not the 49 live ones before it.
    expect(acked.filter((k) => k === 'execution')).toHaveLength(1);
    expect(acked.filter((k) => k === 'event')).toHaveLength(20);
    expect((await retained(jobDeviceTopic('jabc12345', 'c0619ab1d2e3.solarcharger.258'))).seq).toBe(50);
    // Nothing in flight: at once.
    await publisher.flush();
  });

  test('acknowledged() resolves once every publish sent before it is acknowledged: true, none failed', async () => {
    const publisher = new StatusPublisher(client, logger, 100, (kind) => acked.push(kind), retainedSink());
    const since = publisher.mark();
    for (let i = 1; i < 30; i++) publisher.execution(record(i, i));
    publisher.execution(record(30, 100, 'failed'));
    publisher.event(event(1));
    expect(acked).toHaveLength(0);
    expect(await publisher.acknowledged(since)).toBe(true);
    expect(acked.filter((k) => k === 'execution')).toHaveLength(1);
    expect(acked.filter((k) => k === 'event')).toHaveLength(1);
  });

  test('acknowledged() answers false when its signal aborts before the acknowledgements arrive', async () => {
    const publisher = new StatusPublisher(client, logger, 100, (kind) => acked.push(kind), retainedSink());
    publisher.event(event(1));
    const shutdown = new AbortController();
    const answer = publisher.acknowledged(publisher.mark(), shutdown.signal);
    shutdown.abort();
    expect(await answer).toBe(false);
    await publisher.flush();
    expect(acked).toEqual(['event']);
  });

  test('a record older than one already published is not sent', async () => {
    const publisher = new StatusPublisher(client, logger, 100, (kind) => acked.push(kind), retainedSink());
    publisher.execution(record(100, 60, 'succeeded'));
    publisher.execution(record(99, 55));
    publisher.execution(record(100, 60, 'succeeded'));
    await publisher.flush();
    expect(acked).toEqual(['execution']);
    expect((await retained(jobDeviceTopic('jabc12345', 'c0619ab1d2e3.solarcharger.258'))).seq).toBe(100);
  });

  test('a record serialized already (as the job store stored it) goes out as those bytes', async () => {
    const publisher = new StatusPublisher(client, logger, 100, undefined, retainedSink());
    const deviceId = 'c0619ab1d2e3.solarcharger.260';
    const rec = { ...record(7, 70, 'succeeded'), deviceId };
    // Key order differs from JSON.stringify(rec): what arrives is the given text, not a new serialization.
    const { seq, ...rest } = rec;
    const stored = JSON.stringify({ seq, ...rest });
    publisher.execution(rec, stored);
    await publisher.flush();
    expect(await retainedText(jobDeviceTopic('jabc12345', deviceId))).toBe(stored);
  });

  test('a live record goes at QoS 0, the terminal one at QoS 1, and no subscriber sees them reversed', async () => {
    const watcher = await broker.connect('tcp', 'svc', `qos-${Math.random().toString(16).slice(2)}`);
    const jobId = `jqos${Math.random().toString(36).slice(2, 8)}`;
    await watcher.subscribeAsync(`fleetflash/jobs/${jobId}/devices/#`, { qos: 1 });
    const got: { seq: number; qos: number }[] = [];
    const terminal = new Promise<void>((resolve) =>
      watcher.on('message', (_topic, payload, packet) => {
        const body = JSON.parse(payload.toString()) as ExecutionRecord;
        got.push({ seq: body.seq, qos: packet.qos });
        if (body.state === 'succeeded') resolve();
      }),
    );
    const publisher = new StatusPublisher(client, logger, 100, (kind) => acked.push(kind), retainedSink());
    // In one task, as a worker's last progress report and its terminal save can follow each other.
    publisher.execution({ ...record(1, 40), jobId });
    publisher.execution({ ...record(2, 95), jobId, phase: 'installing' });
    publisher.execution({ ...record(3, 100, 'succeeded'), jobId });
    await terminal;
    expect(got).toEqual([
      { seq: 1, qos: 0 },
      { seq: 2, qos: 0 },
      { seq: 3, qos: 1 },
    ]);
    await publisher.flush();
    expect(acked).toEqual(['execution']);
    await watcher.endAsync();
  });

  // aedes drops a delivery whose broker counter is below one the subscriber already got: a record
  // overtaken by the log line published after it would be lost (status-sink.ts).
  test.each([0, 1] as const)(
    'a live subscriber (a browser over WebSocket, QoS %i) gets every record and log line, in order',
    async (qos) => {
      const viewer = await broker.connect('ws', 'svc', `viewer-${Math.random().toString(16).slice(2)}`);
      const jobId = `jlive${Math.random().toString(36).slice(2, 8)}`;
      await viewer.subscribeAsync(`fleetflash/jobs/${jobId}/#`, { qos });
      const seen: string[] = [];
      let logged: { seq: number; resolve: () => void } | null = null;
      viewer.on('message', (topic, payload) => {
        const body = JSON.parse(payload.toString()) as { seq: number };
        const isEvent = topic.endsWith('/events');
        seen.push(`${isEvent ? 'e' : 'r'}${body.seq}`);
        if (isEvent && logged?.seq === body.seq) logged.resolve();
      });
      const publisher = new StatusPublisher(client, logger, 100, undefined, retainedSink());
      for (let seq = 1; seq <= 5; seq++) {
        // Log line n delivered before record n+1 is published (the next save comes later in the
        // driver too; a record and an earlier log line take different ways and may cross).
        const delivered = new Promise<void>((resolve) => (logged = { seq, resolve }));
        // As the driver does after a save: the record, then its log line, in the same task.
        publisher.execution({ ...record(seq, seq * 10), jobId });
        publisher.event({ ...event(seq), jobId });
        await delivered;
      }
      await publisher.flush();
      // Each record before its own log line, none dropped: a record overtaken by the log line
      // published after it would have been dropped by aedes (status-sink.ts).
      expect(seen).toEqual(['r1', 'e1', 'r2', 'e2', 'r3', 'e3', 'r4', 'e4', 'r5', 'e5']);
      await viewer.endAsync();
    },
  );
});

test('records published while the connection is down reach the broker in order once it is back', async () => {
  // mqtt.js replays its stored QoS 1 publishes first and sends the QoS 0 ones it queued offline only
  // after them: a live record queued behind a terminal one would have become the retained record.
  const offline = await broker.connect('tcp', 'svc', `status-offline-${Math.random().toString(16).slice(2)}`, {
    reconnectPeriod: 20,
  });
  const watcher = await broker.connect('tcp', 'svc', `status-watch-${Math.random().toString(16).slice(2)}`);
  const jobId = `joff${Math.random().toString(36).slice(2, 8)}`;
  const topic = jobDeviceTopic(jobId, 'c0619ab1d2e3.solarcharger.258');
  await watcher.subscribeAsync(topic, { qos: 1 });
  const seen: number[] = [];
  const both = new Promise<void>((resolve) =>
    watcher.on('message', (_topic, payload) => {
      seen.push((JSON.parse(payload.toString()) as ExecutionRecord).seq);
      if (seen.length === 2) resolve();
    }),
  );
  const closed = new Promise<void>((resolve) => offline.once('close', () => resolve()));
  offline.stream.destroy();
  await closed;
  expect(offline.connected).toBe(false);
  const publisher = new StatusPublisher(offline, logger, 100);
  publisher.execution({ ...record(1, 40), jobId });
  publisher.execution({ ...record(2, 100, 'succeeded'), jobId });
  await both;
  expect(seen).toEqual([1, 2]);
  expect((await retained(topic)).seq).toBe(2);
  await publisher.flush();
  await Promise.all([offline.endAsync(), watcher.endAsync()]);
});

test('the in-process sink refuses what is not retained', () => {
  expect(() =>
    embeddedBrokerSink(broker.broker.aedes).publish(
      'fleetflash/jobs/j1/events',
      '{}',
      { qos: 1, retain: false },
      () => undefined,
    ),
  ).toThrow(/retained records only/);
});

test('a publish that fails is logged and does not hold flush() up', async () => {
  const gone = await broker.connect('tcp', 'svc', 'status-publisher-gone');
  await gone.endAsync();
  const publisher = new StatusPublisher(gone, logger, 100, (kind) => acked.push(kind));
  const since = publisher.mark();
  // The client is not connected: the live record goes at QoS 1 too, and fails like the terminal one.
  publisher.execution(record(1, 0));
  publisher.execution(record(2, 100, 'succeeded'));
  await publisher.flush();
  expect(acked).toEqual([]);
  expect(logs.filter((l) => l.msg === 'status publish failed')).toHaveLength(2);
  // What waits for the acknowledgements learns that one of its publishes was lost; a later mark does not.
  expect(await publisher.acknowledged(since)).toBe(false);
  expect(await publisher.acknowledged(publisher.mark())).toBe(true);
});
