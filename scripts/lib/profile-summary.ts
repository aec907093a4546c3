/**
 * What a V8 CPU profile (`.cpuprofile`, as `--profile DIR` of the bench writes them) says, over the
 * whole profile or a window of it: how busy the process was, the time under each package or project
 * directory (inclusive: a function calling into aedes counts for both), and the functions that spent
 * it themselves. V8 stamps samples with the monotonic clock `process.hrtime` reads, so a window the
 * bench prints (the status-latency measurement's) cuts a service process's profile to it.
 */

/** The parts of the `.cpuprofile` format read here. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  /** Microseconds, monotonic clock. */
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds since the previous sample (the first: since `startTime`). */
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** The window's length and the time the samples in it cover, in milliseconds. */
  windowMs: number;
  sampledMs: number;
  /** Sampled time not spent waiting for I/O (`(idle)`). */
  busyMs: number;
  /** Inclusive milliseconds per group, largest first. */
  groups: { name: string; ms: number }[];
  /** Self milliseconds per function (`name file:line`), largest first. */
  functions: { name: string; ms: number }[];
}

type Frame = CpuProfile['nodes'][number]['callFrame'];

/**
 * `GC`, `idle`, `program` (V8's own), `<package>` for a file under node_modules, the project's top
 * directory and the next path part for a project file (`src/net`, `broker/broker.ts`), `node:` for
 * Node's own JavaScript, `native` for a frame with no script.
 */
export function frameGroup(frame: Frame): string {
  const { functionName: fn, url } = frame;
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'program';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return 'node:';
  if (!url) return 'native';
  const parts = url.replace(/^file:\/\//, '').split('/');
  const root = parts.findIndex((p) => ['src', 'broker', 'scripts', 'devices-sim', 'web', 'test'].includes(p));
  return root >= 0 ? parts.slice(root, root + 2).join('/') : 'other';
}

function frameName(frame: Frame): string {
  const file = frame.url
    .replace(/^.*node_modules\//, '')
    .replace(/^.*\/(src|broker|scripts|devices-sim|web|test)\//, '$1/');
  return `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`;
}

/** Summarizes the samples taken in [from, to] (monotonic microseconds; default: the whole profile). */
export function summarizeProfile(
  profile: CpuProfile,
  window: { from?: number; to?: number } = {},
): ProfileSummary {
  const from = window.from ?? profile.startTime;
  const to = window.to ?? profile.endTime;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const groups = new Map<string, number>();
  const functions = new Map<string, number>();
  let sampled = 0;
  let idle = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    if (t < from || t > to) continue;
    // A sample stands for the time until the next one.
    const d = profile.timeDeltas[i + 1] ?? 0;
    const leaf = byId.get(profile.samples[i]);
    if (!leaf) continue;
    sampled += d;
    if (leaf.callFrame.functionName === '(idle)') idle += d;
    const name = frameName(leaf.callFrame);
    functions.set(name, (functions.get(name) ?? 0) + d);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      if (frame.functionName === '(root)') continue;
      const g = frameGroup(frame);
      // A native frame counts where it was sampled, not as a caller (a callback's native entry).
      if ((g === 'native' && id !== leaf.id) || seen.has(g)) continue;
      seen.add(g);
      groups.set(g, (groups.get(g) ?? 0) + d);
    }
  }
  const sorted = (m: Map<string, number>) =>
    [...m].map(([name, us]) => ({ name, ms: us / 1000 })).sort((a, b) => b.ms - a.ms);
  return {
    windowMs: (to - from) / 1000,
    sampledMs: sampled / 1000,
    busyMs: (sampled - idle) / 1000,
    groups: sorted(groups),
    functions: sorted(functions),
  };
}
