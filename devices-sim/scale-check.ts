/* eslint-disable no-console -- a command-line tool: stdout is its output. */
/**
 * Scale check: connects N simulated sites and reports connect time, simulator memory per site and
 * broker memory per connection.
 *
 *   npx tsx devices-sim/scale-check.ts --sites 10000 [--url mqtt://host:port] [--connect-rate 500]
 *                                      [--hold-sec 10] [--keepalive] [--broker aedes|fleetflash]
 *
 * Without --url it starts a broker in a child process (so the two are measured apart): plain Aedes,
 * or with `--broker fleetflash` the service's embedded broker (its ACL, hooks and memory savings).
 * --keepalive then keeps every site alive for the hold period (heartbeats flowing) to show that cost.
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import '../src/quiet-debug.js';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connectMqtt, waitConnected } from '../src/mqtt/connect.js';
import { startFleet } from './fleet.js';

interface Args {
  sites: number;
  url: string | null;
  connectRate: number;
  holdSec: number;
  keepalive: boolean;
  broker: 'aedes' | 'fleetflash';
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i === -1 ? undefined : argv[i + 1];
  };
  return {
    sites: Number(get('sites') ?? 10_000),
    url: get('url') ?? null,
    connectRate: Number(get('connect-rate') ?? 500),
    holdSec: Number(get('hold-sec') ?? 10),
    keepalive: argv.includes('--keepalive'),
    broker: brokerKind(get('broker') ?? 'aedes'),
  };
}

function brokerKind(value: string): Args['broker'] {
  if (value !== 'aedes' && value !== 'fleetflash')
    throw new Error(`--broker must be aedes or fleetflash, got ${value}`);
  return value;
}

interface BrokerStats {
  rss: number;
  heapUsed: number;
  external: number;
  clients: number;
}

function ask(child: ChildProcess): Promise<BrokerStats> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as BrokerStats));
    child.send('stats');
  });
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const kb = (bytes: number) => (bytes / 1024).toFixed(1);
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  let child: ChildProcess | null = null;
  let url = args.url;
  if (!url) {
    const childPath = fileURLToPath(new URL('./scale-broker-child.ts', import.meta.url));
    child = fork(childPath, [args.broker], { execArgv: ['--import', 'tsx', '--expose-gc'] });
    const port = await new Promise<number>((resolve) =>
      child!.once('message', (m) => resolve((m as { port: number }).port)),
    );
    url = `mqtt://127.0.0.1:${port}`;
  }
  const brokerName = args.broker === 'fleetflash' ? "fleetflash's broker" : 'plain Aedes';
  const brokerBefore = child ? await ask(child) : null;
  gc();
  const before = process.memoryUsage();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  console.log(
    `scale-check: ${args.sites} sites → ${url} at ${args.connectRate}/s${child ? ` (${brokerName} in a child process)` : ''}`,
  );
  const progress = setInterval(
    () =>
      console.log(`  connected ${fleet?.stats().connected ?? 0}, rss ${mb(process.memoryUsage().rss)} MB`),
    5000,
  );
  let fleet: Awaited<ReturnType<typeof startFleet>> | null = null;
  fleet = await startFleet({
    url,
    sites: args.sites,
    connectRatePerSec: args.connectRate,
    credentials: () => 'scale',
    portalIdSalt: 'scale',
    waitForConnect: false,
    connectTimeoutMs: 30 * 60_000,
  });
  await fleet.waitConnected(30 * 60_000);
  const connectMs = performance.now() - started;
  const cpuConnect = process.cpuUsage(cpuBefore);
  clearInterval(progress);

  let observer: ReturnType<typeof connectMqtt> | null = null;
  let heartbeats = 0;
  if (args.keepalive) {
    observer = connectMqtt(url, { clientId: 'scale-observer', reconnectPeriod: 0 });
    await waitConnected(observer);
    await observer.subscribeAsync('N/+/heartbeat');
    observer.on('message', () => heartbeats++);
    for (const site of fleet.sites)
      observer.publish(`R/${site.portalId}/keepalive`, '{"keepalive-options":["suppress-republish"]}');
  }
  const idleCpuBefore = process.cpuUsage();
  await new Promise((r) => setTimeout(r, args.holdSec * 1000));
  const idleCpu = process.cpuUsage(idleCpuBefore);
  gc();
  const after = process.memoryUsage();
  const brokerAfter = child ? await ask(child) : null;

  const n = args.sites;
  const lines = [
    `connect: ${n} sites in ${(connectMs / 1000).toFixed(1)} s (${(n / (connectMs / 1000)).toFixed(0)}/s), simulator CPU ${((cpuConnect.user + cpuConnect.system) / 1000).toFixed(0)} ms`,
    `simulator: rss ${mb(before.rss)} → ${mb(after.rss)} MB = ${kb((after.rss - before.rss) / n)} KB/site; heap ${mb(before.heapUsed)} → ${mb(after.heapUsed)} MB = ${kb((after.heapUsed - before.heapUsed) / n)} KB/site`,
    `simulator ${args.keepalive ? 'alive' : 'idle'} CPU over ${args.holdSec} s: ${(((idleCpu.user + idleCpu.system) / 1000 / (args.holdSec * 1000)) * 100).toFixed(1)} % of one core${args.keepalive ? `, ${heartbeats} heartbeats seen (${(heartbeats / args.holdSec).toFixed(0)}/s)` : ''}`,
  ];
  if (brokerBefore && brokerAfter) {
    lines.push(
      `broker (${brokerName}, after GC): rss ${mb(brokerBefore.rss)} → ${mb(brokerAfter.rss)} MB = ${kb((brokerAfter.rss - brokerBefore.rss) / brokerAfter.clients)} KB/connection; heap + external ${mb(brokerBefore.heapUsed + brokerBefore.external)} → ${mb(brokerAfter.heapUsed + brokerAfter.external)} MB = ${((brokerAfter.heapUsed + brokerAfter.external - brokerBefore.heapUsed - brokerBefore.external) / brokerAfter.clients).toFixed(0)} bytes/connection; ${brokerAfter.clients} clients`,
    );
  }
  console.log(lines.join('\n'));

  await observer?.endAsync();
  const stopStarted = performance.now();
  await fleet.stop();
  console.log(`stop: ${((performance.now() - stopStarted) / 1000).toFixed(1)} s`);
  if (child) {
    child.send('stop');
    await new Promise((r) => child!.once('exit', r));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
