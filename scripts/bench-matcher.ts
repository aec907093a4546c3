/**
 * The broker's subscriber index (broker/subscription-trie.ts) against the qlobber trie mqemitter
 * would use, on a fleet's subscriptions: each site's three filters and its RPC reply filter (the
 * worker's), the fleet monitor's wildcards and the browsers' job filter. Prints matches per second
 * (median and spread of the rounds after a warm-up), the time to add every filter, and the heap each
 * index holds after a full GC.
 *
 *   npm run bench:matcher -- [--sites 10000] [--rounds 7]
 */
import os from 'node:os';
import mqemitter from 'mqemitter';
import { SubscriptionTrie } from '../broker/subscription-trie.js';
import { formatSpread, round, spread } from './lib/bench-stats.js';
import { positiveIntFlag } from './lib/int-flag.js';

interface Matcher {
  add(filter: string, value: unknown): unknown;
  match(topic: string): unknown[];
}

const sites = positiveIntFlag('sites', 10_000);
const rounds = positiveIntFlag('rounds', 7);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:matcher does)');

const ids = Array.from({ length: sites }, (_, i) => (0xc0619a000000 + i).toString(16));
const filters = [
  ...ids.flatMap((id) => [`R/${id}/#`, `W/${id}/#`, `P/${id}/in/+`, `P/${id}/out/+`]),
  'N/+/system/0/Serial',
  'N/+/full_publish_completed',
  ...['ProductId', 'ProductName', 'FirmwareVersion', 'Connected', 'CustomName'].map((p) => `N/+/+/+/${p}`),
  'fleetflash/jobs/#',
];
/** What sites and the service publish: a Serial, an RPC reply, a keepalive, a heartbeat, a status record. */
const topics = ids.flatMap((id) => [
  `N/${id}/system/0/Serial`,
  `P/${id}/out/abc123`,
  `R/${id}/keepalive`,
  `N/${id}/heartbeat`,
  `fleetflash/jobs/j1/executions/${id}`,
]);

function build(make: () => Matcher): { matcher: Matcher; addMs: number; heapBytes: number } {
  gc!();
  const before = process.memoryUsage().heapUsed;
  const started = performance.now();
  const matcher = make();
  for (const f of filters) matcher.add(f, () => undefined);
  const addMs = performance.now() - started;
  gc!();
  return { matcher, addMs, heapBytes: process.memoryUsage().heapUsed - before };
}

function matchesPerSec(m: Matcher): number {
  const started = performance.now();
  let found = 0;
  for (const t of topics) found += m.match(t).length;
  if (found === 0) throw new Error('nothing matched');
  return topics.length / ((performance.now() - started) / 1000);
}

const candidates = {
  qlobber: () => (mqemitter({ matchEmptyLevels: true }) as unknown as { _matcher: Matcher })._matcher,
  trie: () =>
    new SubscriptionTrie({ separator: '/', wildcardOne: '+', wildcardSome: '#', matchEmptyLevels: true }),
};
console.log(
  `bench:matcher: ${os.cpus().length} cores, Node ${process.version}, ${sites} sites, ${filters.length} filters, ${topics.length} topics, ${rounds} rounds after a warm-up`,
);
const built = Object.entries(candidates).map(([name, make]) => ({ name, ...build(make) }));
const rates = new Map<string, number[]>(built.map((b) => [b.name, []]));
for (let r = 0; r <= rounds; r++) {
  for (const b of built) {
    const rate = matchesPerSec(b.matcher);
    if (r > 0) rates.get(b.name)!.push(rate / 1e6);
  }
}
const summary: Record<string, unknown> = {};
for (const b of built) {
  const s = spread(rates.get(b.name)!);
  console.log(
    `  ${b.name.padEnd(8)} ${formatSpread(s, 2, 'M matches/s')}, adds ${b.addMs.toFixed(0)} ms, heap ${(b.heapBytes / sites).toFixed(0)} bytes per site`,
  );
  summary[b.name] = {
    matchesPerSecM: round(s.median),
    addMs: Math.round(b.addMs),
    heapBytesPerSite: Math.round(b.heapBytes / sites),
  };
}
const [q, t] = built.map((b) => spread(rates.get(b.name)!).median);
summary.ratioTrieToQlobber = round(t / q);
console.log(JSON.stringify(summary));
