/**
 * `npm run sim -- --sites 500 --url mqtt://127.0.0.1:1884 --password x`: runs a simulated fleet
 * until SIGINT/SIGTERM, printing a summary line every 2 s. See `--help`.
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import '../src/quiet-debug.js';
import { pino, type LevelWithSilent } from 'pino';
import { parseCliArgs, UsageError, USAGE, type CliArgs } from './cli-args.js';
import { loadCredentials } from './credentials-source.js';
import { startFleet, type Fleet } from './fleet.js';
import { portalIdsFor } from './portal-ids.js';

async function main(): Promise<void> {
  let args: CliArgs;
  try {
    args = parseCliArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) console.error(`sim: ${err.message}`);
    console.error(USAGE);
    process.exit(err.message ? 2 : 0);
  }
  // The simulator's own log goes to stderr; stdout carries the summary lines.
  const logger = pino({ level: args.logLevel as LevelWithSilent, name: 'sim' }, pino.destination(2));
  const portalIds = portalIdsFor(args.sites, args.seed, args.salt);
  const credentials = await loadCredentials(args.credentials, portalIds);
  const started = performance.now();
  const fleet = await startFleet({
    url: args.url,
    sites: args.sites,
    seed: args.seed,
    timeScale: args.timeScale,
    mix: args.mix,
    faults: args.faults,
    timingSpread: args.timingSpread,
    connectRatePerSec: args.connectRate,
    portalIdSalt: args.salt,
    credentials,
    logger,
    waitForConnect: false,
  });
  console.log(
    `sim: ${args.sites} sites, ${fleet.devices().length} devices → ${args.url} (seed ${args.seed}, time ×${args.timeScale}, timing spread ±${Math.round(args.timingSpread * 100)} %)`,
  );
  fleet.waitConnected().then(
    () =>
      console.log(
        `sim: all ${args.sites} sites connected in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      ),
    (err: unknown) => console.error(`sim: ${err instanceof Error ? err.message : String(err)}`),
  );
  const timer = setInterval(() => console.log(summary(fleet)), 2000);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    clearInterval(timer);
    console.log(`sim: ${signal}, stopping…`);
    await fleet.stop();
    console.log(summary(fleet));
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

function summary(fleet: Fleet): string {
  const s = fleet.stats();
  const rssMb = process.memoryUsage().rss / 1024 / 1024;
  return `connected ${s.connected}/${s.sites}  updating ${s.updating}  succeeded ${s.succeeded}  failed ${s.failed}  rss ${rssMb.toFixed(0)} MB`;
}

main().catch((err: unknown) => {
  console.error(`sim: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
