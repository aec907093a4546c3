/**
 * `npm run bench`: fleetflash doing its real job on this machine, measured.
 *
 * Every run starts a private redis-server, the service in its own process (embedded broker, or
 * pointed at the machine's Mosquitto) and the simulated fleet in another, lets a warm-up job run
 * (not counted), then measures fleet update throughput, status latency, launch latency and rate,
 * memory, and the raw ceilings of BullMQ and the broker; then tears everything down. Runs of the two
 * brokers alternate, every other round in reverse (`runOrder`), so drifting machine load hits both
 * alike. Human lines go to stdout as it goes;
 * the last line is one JSON summary. See the README's "Performance" section.
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import '../src/quiet-debug.js';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FINISHED_QUEUE_JOBS_KEPT } from '../src/queue/execution-queue.js';
import { HISTORY_LIMIT } from '../src/store/device-store.js';
import { parseBenchArgs, runOrder, USAGE, UsageError, type BenchArgs, type BrokerMode } from './lib/bench-args.js';
import { brokerCeiling, bullmqCeiling } from './lib/bench-ceilings.js';
import { startCluster, type Cluster } from './lib/bench-cluster.js';
import { FIGURES, ratios, STATUS_P99_TARGET_MS, summarize, summaryLines, targets, type FigureName, type RunFigures, type Summary } from './lib/bench-figures.js';
import { allocatedBytes, sampleAllocations } from './lib/bench-inspector.js';
import { imageVersion, inflightMemory, launchRate, statusLatency, throughput, uploadImage } from './lib/bench-phases.js';
import { machineInfo, settle } from './lib/bench-proc.js';
import { describeSeconds, round, spread } from './lib/bench-stats.js';
import { JobWatcher } from './lib/bench-watcher.js';
import { stoppingOnSignal } from './lib/processes.js';

/** The service's WORKER_CONCURRENCY when the bench does not set one (src/config.ts). */
const SERVICE_DEFAULT_CONCURRENCY = 2000;
const WARMUP_LAUNCHES = 20;

const log = (line: string) => console.log(line);

/** Lets the service (and Mosquitto) settle before the next measurement; says how long that took. */
async function quiet(c: { servicePids: number[]; brokerPid: number | null }): Promise<void> {
  const s = await settle(c.brokerPid ? [...c.servicePids, c.brokerPid] : c.servicePids);
  log(`  settled in ${(s.waitedMs / 1000).toFixed(1)} s (${s.settled ? '' : 'still '}${Math.round(s.corePct)} % of a core)`);
}

/**
 * With `--alloc-profile DIR`: samples what each service process allocates while `measure` runs (the
 * measured job), writes `DIR/<label>-<process>.heapprofile` (DevTools: Memory, load profile) and says
 * how many KB each process allocated per execution. Without it, just `measure`.
 */
async function withAllocationProfiles<T extends { executions: number }>(
  c: Cluster,
  dir: string | null,
  label: string,
  measure: () => Promise<T>,
): Promise<{ result: T; allocated: string | null }> {
  if (!dir) return { result: await measure(), allocated: null };
  await mkdir(dir, { recursive: true });
  const sampling = await Promise.all(c.inspectors.map(async (i) => ({ ...i, sampler: await sampleAllocations(i.port) })));
  const result = await measure();
  const parts: string[] = [];
  for (const { name, sampler } of sampling) {
    const profile = await sampler.stop();
    const file = path.join(dir, `${label}-${name}.heapprofile`);
    await writeFile(file, JSON.stringify(profile));
    parts.push(`${name} ${(allocatedBytes(profile.head) / 1024 / result.executions).toFixed(0)} KB`);
  }
  return { result, allocated: `allocated per execution (sampled): ${parts.join(', ')}; profiles in ${path.resolve(dir)}` };
}

async function oneRun(mode: BrokerMode, run: number, args: BenchArgs): Promise<RunFigures> {
  log(`\n[${mode} run ${run}] starting redis-server, the service and ${args.sites} sites`);
  const c = await startCluster(mode, args, log);
  let watcher: JobWatcher | null = null;
  try {
    watcher = await JobWatcher.connect(c, args.mosquittoWsPort);
    const concurrency = args.workerConcurrency ?? SERVICE_DEFAULT_CONCURRENCY;
    let images = 0;
    const image = () => uploadImage(c, imageVersion(images++));
    const launchImage = await uploadImage(c, 'v9.00');

    const warmDevices = c.targets.slice(0, Math.min(args.warmupDevices, c.targets.length));
    const warm = await throughput(c, watcher, warmDevices, await image());
    if (!args.quick) await launchRate(c, c.targets, launchImage, Math.min(4, args.launchClients), WARMUP_LAUNCHES, args.launchDevices);
    log(`  warm-up: ${warm.executions} executions in ${Math.round(warm.wallMs)} ms (not counted)`);
    await quiet(c);

    const measured = await image();
    const { result: t, allocated } = await withAllocationProfiles(c, args.allocProfileDir, `${mode}-run${run}`, () =>
      throughput(c, watcher!, c.targets, measured),
    );
    log(
      `  throughput: ${t.executions} executions, ${JSON.stringify(t.states)}, wall ${Math.round(t.wallMs)} ms, ` +
        `${Math.round(t.execPerSec)}/s sustained (${Math.round(t.execPerSecOverall)}/s overall), peak ${t.peakInflight} in flight; ` +
        `CPU/execution: service ${t.serviceCpuMsPerExec.toFixed(2)} ms${t.serviceCpuMsPerExecByProcess.length > 1 ? ` (${t.serviceCpuMsPerExecByProcess.map((ms, i) => `${c.inspectors[i].name} ${ms.toFixed(2)}`).join(' + ')})` : ''}${c.brokerPid ? `, mosquitto ${t.brokerCpuMsPerExec.toFixed(2)} ms` : ''}, ` +
        `redis ${t.redisCpuMsPerExec.toFixed(2)} ms, simulator ${t.simCpuMsPerExec.toFixed(2)} ms; POST ${Math.round(t.launchMs)} ms; ` +
        `per execution: ${t.redisCallsPerExec.toFixed(1)} Redis commands (${t.redisTop}), ${t.deliveriesPerExec.toFixed(1)} MQTT messages at sites and browser (${t.deliveriesSplit})`,
    );
    const kept = (bytes: number) => `${(bytes / 1024).toFixed(2)} KB`;
    log(
      `  Redis kept per execution: ${kept(t.redisKept.total)} (the job's own records ${kept(t.redisKept.job)}, kept until JOB_RETENTION_MS, off here: for good; ` +
        `the devices' update histories ${kept(t.redisKept.histories)}, each kept to its last ${HISTORY_LIMIT} entries; the queue's finished jobs and their events ${kept(t.redisKept.queue)}, kept to the last ${FINISHED_QUEUE_JOBS_KEPT.toLocaleString('en-US')} of each; the rest ${kept(t.redisKept.rest)})`,
    );
    if (allocated) log(`  ${allocated}`);
    log(`  timeline: ${t.timeline}`);
    log(`  log lines per execution: ${t.logKinds}`);
    await quiet(c);

    const latencyDevices = c.targets.slice(0, Math.min(c.targets.length, 3 * args.latencyConcurrency));
    const l = await statusLatency(c, watcher, latencyDevices, await image(), Math.min(args.latencyConcurrency, latencyDevices.length));
    log(
      `  status latency (${watcher.transport}): p50 ${l.p50Ms.toFixed(1)} ms, p99 ${l.p99Ms.toFixed(1)} ms, max ${l.maxMs.toFixed(1)} ms ` +
        `over ${l.samples} events at ${Math.round(l.inflight)} in flight, ${Math.round(l.updating)} devices updating (${l.unmatched} events changed nothing visible); ` +
        `a device event had ${Math.round(l.neighbours)} others sent within ±1 ms (median)`,
    );
    const secondP99 = spread(l.p99BySecond.map((s) => s.p99));
    const slowSeconds = l.p99BySecond.filter((s) => s.p99 >= STATUS_P99_TARGET_MS);
    const calmSeconds = l.p99BySecond.length - slowSeconds.length;
    log(
      `  status latency by second of sending: p99 ${secondP99.median.toFixed(1)} ms in the median second ` +
        `(fastest ${secondP99.min.toFixed(1)}, slowest ${secondP99.max.toFixed(1)} ms), ${calmSeconds} of ${l.p99BySecond.length} seconds under ${STATUS_P99_TARGET_MS} ms` +
        (slowSeconds.length ? `; the others: ${describeSeconds(slowSeconds, l.samples)}` : ''),
    );

    if (args.profileDir) {
      log(
        `  status latency window for the profiles (monotonic µs): npm run profile -- <file> --from ${l.windowUs.from} --to ${l.windowUs.to}`,
      );
    }

    const L = await launchRate(c, c.targets, launchImage, args.launchClients, args.launches, args.launchDevices);
    log(`  launch: ${L.launches} jobs of ${args.launchDevices} devices from ${L.clients} clients: p50 ${L.p50Ms.toFixed(1)} ms, p99 ${L.p99Ms.toFixed(1)} ms, ${Math.round(L.perSec)} jobs/s`);

    // Twice the worker's concurrency: devices enough for the worker to fill every slot at once.
    const memoryDevices = c.targets.slice(0, Math.min(c.targets.length, 2 * concurrency));
    const rssPerInflightKb = await inflightMemory(c, watcher, memoryDevices, await image(), Math.min(memoryDevices.length, concurrency));
    await quiet(c);

    const bull = await bullmqCeiling(c, args.ceilingJobs, concurrency);
    const raw = await brokerCeiling(c, args.ceilingSec);
    log(`  ceilings: BullMQ ${Math.round(bull)} empty jobs/s; broker ${Math.round(raw)} msgs/s raw`);

    const kb = (bytes: number) => bytes / 1024 / args.sites;
    const rssSite = kb(c.rssWithFleet.service - c.rssBeforeFleet.service);
    const rssSiteRaw = kb(c.rssWithFleet.raw - c.rssBeforeFleet.raw);
    const rssSiteBroker = rssSite + kb(c.rssWithFleet.broker - c.rssBeforeFleet.broker);
    log(`  memory: service ${rssSite.toFixed(1)} KB per site after a full GC (${rssSiteRaw.toFixed(1)} KB as found)${c.brokerPid ? ` (with Mosquitto's heap: ${rssSiteBroker.toFixed(1)} KB)` : ''}, ${rssPerInflightKb.toFixed(1)} KB per in-flight execution; fleet connected at ${Math.round(args.sites / (c.connectMs / 1000))}/s`);
    return {
      execPerSec: t.execPerSec,
      execPerSecOverall: t.execPerSecOverall,
      wallMs: t.wallMs,
      succeededPct: t.succeededPct,
      serviceCpuMsPerExec: t.serviceCpuMsPerExec,
      serviceBrokerCpuMsPerExec: t.serviceCpuMsPerExec + t.brokerCpuMsPerExec,
      redisCpuMsPerExec: t.redisCpuMsPerExec,
      redisKeptKbPerExec: t.redisKept.total / 1024,
      redisJobKbPerExec: t.redisKept.job / 1024,
      simCpuMsPerExec: t.simCpuMsPerExec,
      peakInflight: t.peakInflight,
      statusP50Ms: l.p50Ms,
      statusP99Ms: l.p99Ms,
      statusMaxMs: l.maxMs,
      statusInflight: l.inflight,
      statusUpdating: l.updating,
      statusSecondP99MedianMs: secondP99.median,
      statusNeighbours: l.neighbours,
      statusSecondsUnderTargetPct: l.p99BySecond.length ? (100 * calmSeconds) / l.p99BySecond.length : Number.NaN,
      statusSamples: l.samples,
      launchP50Ms: L.p50Ms,
      launchP99Ms: L.p99Ms,
      launchesPerSec: L.perSec,
      rssPerSiteKb: rssSite,
      rssPerSiteWithBrokerKb: rssSiteBroker,
      rssPerSiteRawKb: rssSiteRaw,
      rssPerInflightKb,
      connectPerSec: args.sites / (c.connectMs / 1000),
      deliveriesPerExec: t.deliveriesPerExec,
      bullmqEmptyJobsPerSec: bull,
      brokerRawMsgsPerSec: raw,
      execVsBullmq: t.execPerSec / bull,
      brokerShare: t.deliveriesPerSec / raw,
    };
  } catch (err) {
    // Stopped by a signal, the run fails as its processes go: nothing to show.
    if (!stoppingOnSignal()) log(`  run failed; the service log ends with:\n${await c.serviceLogTail()}`);
    throw err;
  } finally {
    await watcher?.close().catch(() => undefined);
    await c.close();
  }
}

function jsonSummary(s: Summary): Record<string, { median: number; min: number; max: number; runs: number[] }> {
  const out: Record<string, { median: number; min: number; max: number; runs: number[] }> = {};
  for (const name of Object.keys(FIGURES) as FigureName[]) {
    const d = FIGURES[name].digits + 1;
    out[name] = { median: round(s[name].median, d), min: round(s[name].min, d), max: round(s[name].max, d), runs: s[name].runs.map((v) => round(v, d)) };
  }
  return out;
}

async function main(): Promise<void> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) console.error(`bench: ${err.message}`);
    console.error(USAGE);
    process.exit(err.message ? 2 : 0);
  }
  const machine = machineInfo();
  const started = Date.now();
  log(`fleetflash bench: ${machine.cores} cores (${machine.cpu}), ${machine.memGb} GB, Node ${machine.node}, load average ${machine.load1}`);
  log(
    `  ${args.sites} sites (GX + solar charger each), ${args.runs} run(s) per broker (${args.brokers.join(', ')}${args.brokers.includes('mosquitto') ? `, Mosquitto at 127.0.0.1:${args.mosquittoPort}${args.mosquittoWsPort !== null ? `, its WebSocket listener at ${args.mosquittoWsPort} for the watcher` : ''}` : ''}), ${args.topology} topology, time scale ${args.timeScale} (timing spread ±${Math.round(args.timingSpread * 100)} %), ` +
      `status latency at ${args.latencyConcurrency} in flight, ${args.launches} launches from ${args.launchClients} clients` +
      (args.workerConcurrency ? `, WORKER_CONCURRENCY ${args.workerConcurrency}` : '') +
      (args.startWindow !== null ? `, WORKER_START_WINDOW ${args.startWindow}` : '') +
      `, LOG_LEVEL ${args.logLevel}`,
  );
  const results: Partial<Record<BrokerMode, RunFigures[]>> = {};
  for (const { mode, run } of runOrder(args.brokers, args.runs)) (results[mode] ??= []).push(await oneRun(mode, run, args));

  const summaries: Partial<Record<BrokerMode, Summary>> = {};
  for (const mode of args.brokers) summaries[mode] = summarize(results[mode] ?? []);
  log('');
  for (const mode of args.brokers) log(summaryLines(mode, summaries[mode]!).join('\n'));
  const r = summaries.embedded && summaries.mosquitto ? ratios(summaries.embedded, summaries.mosquitto) : null;
  if (r) {
    log('\nembedded ÷ Mosquitto (> 1: the embedded broker is worse by that factor):');
    for (const [name, v] of Object.entries(r)) log(`  ${FIGURES[name as FigureName].label.padEnd(44)} ${v.toFixed(2)}×`);
  }
  const main = summaries.embedded ?? summaries.mosquitto!;
  const t = targets(args.sites, main, r);
  log(`\ntargets (${summaries.embedded ? 'embedded' : 'mosquitto'} broker, medians):`);
  for (const x of t) log(`  ${x.met === null ? 'n/a ' : x.met ? 'MET ' : 'MISS'}  ${x.target}: ${x.value}${x.note ? ` (${x.note})` : ''}`);
  const endMachine = machineInfo();
  log(`\nfinished in ${Math.round((Date.now() - started) / 1000)} s; load average now ${endMachine.load1}`);
  console.log(
    JSON.stringify({
      bench: 'fleetflash',
      machine: { ...machine, load1End: endMachine.load1 },
      args: { ...args },
      results: Object.fromEntries(Object.entries(summaries).map(([mode, s]) => [mode, jsonSummary(s)])),
      ratios: r ? Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v, 3)])) : null,
      targets: t,
    }),
  );
}

main().catch((err: unknown) => {
  // Stopped by a signal: the handler clears up (Mosquitto's retained messages too) and exits.
  if (stoppingOnSignal()) return;
  console.error('bench failed:', err);
  process.exit(1);
});
