/**
 * Summarizes a V8 CPU profile (a `.cpuprofile` of `npm run bench -- --profile DIR`): busy time, the
 * time under each package or project directory, and the functions that spent it. `--from`/`--to`
 * (monotonic microseconds, as the bench prints the status-latency measurement's window when it
 * profiles) cut it to a window, e.g. a job's first seconds against its steady part.
 *
 *   npm run profile -- FILE [--from US] [--to US] [--top N]
 */
import { readFile } from 'node:fs/promises';
import { summarizeProfile, type CpuProfile } from './lib/profile-summary.js';

function usage(message: string): never {
  console.error(`${message}\nusage: npm run profile -- FILE [--from US] [--to US] [--top N]`);
  process.exit(2);
}

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
if (!file) usage('no profile file given');
const flag = (name: string): number | undefined => {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v < 0)
    usage(`--${name} must be a non-negative number, got '${args[i + 1] ?? ''}'`);
  return v;
};
const top = flag('top') ?? 25;
const text = await readFile(file, 'utf8').catch((err: Error) => usage(`cannot read ${file}: ${err.message}`));
let profile: CpuProfile;
try {
  profile = JSON.parse(text) as CpuProfile;
} catch {
  usage(`${file} is not JSON`);
}
if (!Array.isArray(profile.samples) || !Array.isArray(profile.timeDeltas))
  usage(`${file} is not a V8 CPU profile`);
const s = summarizeProfile(profile, { from: flag('from'), to: flag('to') });
const pct = (ms: number) => `${((100 * ms) / Math.max(s.sampledMs, 1e-9)).toFixed(1).padStart(5)} %`;
console.log(
  `${file}: window ${(s.windowMs / 1000).toFixed(1)} s, samples cover ${(s.sampledMs / 1000).toFixed(1)} s, ` +
    `busy ${(s.busyMs / 1000).toFixed(2)} s (${pct(s.busyMs).trim()})`,
);
console.log('inclusive, by package or project directory:');
for (const g of s.groups.slice(0, top))
  console.log(`  ${pct(g.ms)}  ${g.ms.toFixed(0).padStart(7)} ms  ${g.name}`);
console.log('self, by function:');
for (const f of s.functions.slice(0, top))
  console.log(`  ${pct(f.ms)}  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}`);
