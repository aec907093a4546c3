/**
 * A bench run against a Mosquitto leaves retained messages there (the sites' Serials, the fleet's
 * device records, the jobs' records), which the run clears at its end. Stopped by a signal
 * (`timeout`, `kill`, Ctrl-C) it must clear them too: before, it stopped its processes and exited,
 * and the machine's Mosquitto kept 8,752 messages after one 10,000-site run, which slowed the next
 * run's fleet. The real bench, a private Mosquitto on an ephemeral port, a real SIGTERM. That
 * Mosquitto has a WebSocket listener too, for the bench's watcher (`--mosquitto-ws-port`), as the
 * portal connects.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connectMqtt, waitConnected } from '../../src/mqtt/connect.js';
import { freePort, ManagedProcess, portOpen, ROOT } from '../../scripts/lib/processes.js';
import { RETAINED_MARKER_TOPIC } from '../../src/status/retained-restorer.js';

const MOSQUITTO = '/usr/sbin/mosquitto';
const withMosquitto = existsSync(MOSQUITTO) ? describe : describe.skip;

/** The retained messages a Mosquitto holds: all of them arrive before a message published after the subscription. */
async function retainedTopics(url: string): Promise<string[]> {
  const client = connectMqtt(url, { clientId: `ff-retained-${process.pid}`, reconnectPeriod: 0 });
  await waitConnected(client);
  try {
    const marker = `ff-marker/${process.pid}`;
    const topics: string[] = [];
    const done = new Promise<void>((resolve) => {
      client.on('message', (topic, _payload, packet) => {
        if (topic === marker) resolve();
        else if (packet.retain) topics.push(topic);
      });
    });
    // QoS 0: the bench's live traffic keeps arriving until the client has ended, and has nothing to acknowledge then.
    await client.subscribeAsync('#', { qos: 0 });
    await client.publishAsync(marker, 'end', { qos: 1 });
    await done;
    return topics;
  } finally {
    await client.endAsync();
  }
}

/** Resolves with the first line of `child`'s output that contains `text`. */
function lineWith(child: ChildProcess, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const line = buffered.split('\n').find((l) => l.includes(text));
      if (line) {
        child.stdout!.off('data', onData);
        resolve(line);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`bench exited (${code}) before printing "${text}"; output:\n${buffered}`)),
    );
  });
}

withMosquitto('a bench run stopped by a signal', () => {
  let dir: string;
  let mosquitto: ManagedProcess;
  let url: string;
  let port: number;
  let wsPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ff-bench-signal-'));
    port = await freePort();
    wsPort = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    const conf = path.join(dir, 'mosquitto.conf');
    await writeFile(
      conf,
      `allow_anonymous true\npersistence false\nlistener ${port} 127.0.0.1\nlistener ${wsPort} 127.0.0.1\nprotocol websockets\n`,
    );
    mosquitto = new ManagedProcess('mosquitto', MOSQUITTO, ['-c', conf], process.env, null, () =>
      portOpen(port),
    );
    await mosquitto.start(10_000);
  });

  afterAll(async () => {
    await mosquitto?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('clears what it left retained in the Mosquitto before it exits', async () => {
    const bench = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(ROOT, 'scripts/bench.ts'),
        '--quick',
        '--broker',
        'mosquitto',
        '--mosquitto-port',
        String(port),
        '--mosquitto-ws-port',
        String(wsPort),
        '--sites',
        '20',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    bench.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      // The throughput and status latency jobs have run, the watcher over WebSocket: every kind of
      // record the run publishes is retained by now.
      await lineWith(bench, 'status latency (websocket)');
      const during = await retainedTopics(url);
      expect(during.filter((t) => t.endsWith('/system/0/Serial'))).toHaveLength(20);
      expect(during.some((t) => t.startsWith('fleetflash/jobs/'))).toBe(true);
      expect(during.some((t) => t.startsWith('fleetflash/devices/'))).toBe(true);

      const exited = once(bench, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      bench.kill('SIGTERM');
      const [code, signal] = await exited;
      expect({ code, signal, stderr }).toEqual({ code: 143, signal: null, stderr: '' });
      // Only the service's marker stays, as after a run that ends normally: it says the broker still
      // holds a fleetflash's state, which any deployment on that broker may rely on.
      expect(await retainedTopics(url)).toEqual([RETAINED_MARKER_TOPIC]);
    } finally {
      // A SIGKILL would leave its processes running: a failed assertion stops it as a user would.
      if (bench.exitCode === null && bench.signalCode === null) {
        bench.kill('SIGTERM');
        await once(bench, 'exit');
      }
    }
  }, 120_000);
});
