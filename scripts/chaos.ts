/**
 * `npm run chaos -- [--sites 240] [--workers 3] [--kills 6] [--time-scale 20] [--seed 7] [--logs DIR]
 *                   [--no-broker-restart] [--no-redis-restart] [--no-abort]`
 * A fleet update over real processes while workers are SIGKILLed, the broker and Redis restart, and the
 * api,broker process is killed while it aborts one of the jobs.
 * Prints what happened and a JSON report; exits 1 if anything was lost, repeated or misreported.
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import '../src/quiet-debug.js';
import { parseArgs } from 'node:util';
import { DEFAULT_CHAOS, runChaos } from './lib/chaos.js';

const { values } = parseArgs({
  options: {
    sites: { type: 'string' },
    workers: { type: 'string' },
    kills: { type: 'string' },
    'time-scale': { type: 'string' },
    seed: { type: 'string' },
    logs: { type: 'string' },
    timeout: { type: 'string' },
    'no-broker-restart': { type: 'boolean' },
    'no-redis-restart': { type: 'boolean' },
    'no-abort': { type: 'boolean' },
  },
});
const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));

const report = await runChaos({
  ...DEFAULT_CHAOS,
  sites: num(values.sites, DEFAULT_CHAOS.sites),
  workers: num(values.workers, DEFAULT_CHAOS.workers),
  workerKills: num(values.kills, DEFAULT_CHAOS.workerKills),
  timeScale: num(values['time-scale'], DEFAULT_CHAOS.timeScale),
  seed: num(values.seed, DEFAULT_CHAOS.seed),
  restartBroker: !values['no-broker-restart'],
  restartRedis: !values['no-redis-restart'],
  abortMidway: !values['no-abort'],
  logDir: values.logs,
  timeoutMs: num(values.timeout, DEFAULT_CHAOS.timeoutMs),
  progress: (line) => console.log(`[chaos] ${line}`),
});

console.log('');
console.log(`devices ${report.devices}, executions ${report.executions}, terminal ${report.terminal}, lost ${report.lost}`);
console.log(`states ${JSON.stringify(report.byState)}; not succeeded, by error code ${JSON.stringify(report.byError)}`);
console.log(`siteWaits: ${report.siteWaits.waits} waits for a busy site, by ${report.siteWaits.executions} executions (a GX and its products take turns)`);
console.log(
  `repeated installs (a device started >1 update for one execution, or got its install again after starting): ${report.repeatedInstalls}; ` +
    `install sent again before the device accepted any (allowed, nothing had started): ${report.resentBeforeStart}; ` +
    `same request redelivered by MQTT (allowed, idempotent): ${report.redelivered}`,
);
for (const r of report.repeated.slice(0, 20)) console.log(`  repeated ${r}`);
console.log(`succeeded ${report.succeeded} vs really on the new version ${report.onNewVersion}; mismatches ${report.mismatches.length}`);
for (const m of report.mismatches.slice(0, 20)) console.log(`  mismatch ${m}`);
console.log(`canceled executions whose device got the install anyway: ${report.canceledButInstalled.length}`);
for (const c of report.canceledButInstalled.slice(0, 20)) console.log(`  canceled but installed ${c}`);
if (report.aborted) {
  console.log(`job aborted midway ${report.aborted.jobId}: ${report.aborted.canceledBeforeKill} canceled before its process died; at the end ${JSON.stringify(report.aborted.byState)}`);
}
console.log(`not compared: ${report.unobservable} executions behind a GX that never came back (the orchestrator cannot observe them; they time out)`);
console.log(`re-attachments ${report.reattached}; queue at the end ${JSON.stringify(report.queue)}`);
for (const x of report.stuck.slice(0, 20)) console.log(`  STUCK ${x}`);
for (const a of report.actions) console.log(`  ${a.action} at ${(a.atMs / 1000).toFixed(1)} s → recovered in ${a.recoveryMs === null ? 'n/a (nothing in flight)' : a.recoveryMs < 0 ? 'NEVER' : `${a.recoveryMs} ms`}`);
console.log(`wall ${(report.wallMs / 1000).toFixed(1)} s`);
console.log(JSON.stringify(report));
const ok = report.actions.every((a) => a.recoveryMs === null || a.recoveryMs >= 0) && report.lost === 0 && report.repeatedInstalls === 0 && report.mismatches.length === 0 && report.canceledButInstalled.length === 0 && report.terminal === report.executions;
process.exit(ok ? 0 : 1);
