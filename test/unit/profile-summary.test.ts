import { frameGroup, summarizeProfile, type CpuProfile } from '../../scripts/lib/profile-summary.js';

const frame = (functionName: string, url = '', lineNumber = -1) => ({ functionName, url, lineNumber });

/**
 * root ─┬─ (idle)
 *       ├─ (garbage collector)
 *       └─ handle (broker/broker.ts) ── publish (node_modules/aedes) ─┬─ writev (native)
 *                                                                    └─ topicLevelCount (aedes)
 */
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 4] },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('(garbage collector)') },
    { id: 4, callFrame: frame('handle', 'file:///app/broker/broker.ts', 10), children: [5] },
    { id: 5, callFrame: frame('publish', 'file:///app/node_modules/aedes/aedes.js', 200), children: [6, 7] },
    { id: 6, callFrame: frame('writev') },
    { id: 7, callFrame: frame('topicLevelCount', 'file:///app/node_modules/aedes/lib/utils.js', 12) },
  ],
  startTime: 1_000_000,
  endTime: 1_010_000,
  // Samples at 1,001,000 (idle), 1,002,000 (writev), 1,004,000 (idle), 1,005,000 (topicLevelCount),
  // 1,006,000 (GC), 1,009,000 (writev); each stands for the time until the next.
  samples: [2, 6, 2, 7, 3, 6],
  timeDeltas: [1000, 1000, 2000, 1000, 1000, 3000],
};

test('frames are grouped by package, project directory, Node and V8', () => {
  expect(frameGroup(frame('x', 'file:///w/node_modules/@bull-board/api/dist/a.js'))).toBe('@bull-board/api');
  expect(frameGroup(frame('x', 'file:///w/node_modules/aedes/lib/client.js'))).toBe('aedes');
  expect(frameGroup(frame('x', 'file:///w/main/src/net/write-coalescing.ts'))).toBe('src/net');
  expect(frameGroup(frame('x', 'node:internal/streams/writable'))).toBe('node:');
  expect(frameGroup(frame('(garbage collector)'))).toBe('GC');
  expect(frameGroup(frame('writev'))).toBe('native');
});

test('the whole profile: busy time, inclusive time per group, self time per function', () => {
  const s = summarizeProfile(profile);
  expect(s.windowMs).toBe(10);
  // The last sample has no successor: it counts for nothing.
  expect(s.sampledMs).toBe(8);
  // writev 2 + topicLevelCount 1 + GC 3; the 2 ms idle are not busy.
  expect(s.busyMs).toBe(6);
  const groups = Object.fromEntries(s.groups.map((g) => [g.name, g.ms]));
  // aedes and the broker file hold writev's 2 ms as its callers, and topicLevelCount's 1 ms.
  expect(groups).toEqual({ idle: 2, GC: 3, native: 2, aedes: 3, 'broker/broker.ts': 3 });
  expect(s.functions[0]).toEqual({ name: '(garbage collector) :0', ms: 3 });
  expect(s.functions).toContainEqual({ name: 'topicLevelCount aedes/lib/utils.js:13', ms: 1 });
  expect(s.functions).toContainEqual({ name: 'writev :0', ms: 2 });
});

test('a window keeps only the samples taken in it', () => {
  const s = summarizeProfile(profile, { from: 1_003_000, to: 1_006_000 });
  expect(s.windowMs).toBe(3);
  // 1,004,000 idle (1 ms), 1,005,000 topicLevelCount (1 ms), 1,006,000 GC (3 ms).
  expect(s.sampledMs).toBe(5);
  expect(s.busyMs).toBe(4);
  expect(Object.fromEntries(s.groups.map((g) => [g.name, g.ms]))).toEqual({
    GC: 3,
    idle: 1,
    aedes: 1,
    'broker/broker.ts': 1,
  });
});
