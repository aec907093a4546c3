/**
 * quiet-debug.ts: a `debug` namespace that is off at start gets a logger that does nothing (no
 * argument array per call), one that is on gets `debug`'s own; mqtt-packet, loaded after it, takes
 * its loggers from the quiet factory (checked in a child process, the way the service starts); and
 * every entry point imports it before anything else.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { quietFactory } from '../../src/quiet-debug.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const requireHere = createRequire(import.meta.url);

type DebugFactory = Parameters<typeof quietFactory>[0] & {
  enable(namespaces: string): void;
  disable(): string;
};

test('an off namespace gets a logger that does nothing; an on one gets debug’s own, which logs', () => {
  const createDebug = requireHere('debug') as DebugFactory;
  const before = createDebug.disable();
  try {
    createDebug.enable('ff-quiet-test:on*');
    const factory = quietFactory(createDebug);
    const off = factory('ff-quiet-test:off');
    expect(off.name).toBe('quietDebug');
    expect(off.enabled).toBe(false);
    expect(off.namespace).toBe('ff-quiet-test:off');
    expect(() => off('never %s', 'written')).not.toThrow();
    // extend() of an off logger is quiet; of an on namespace, debug's own.
    expect(off.extend('sub').name).toBe('quietDebug');
    expect(factory('ff-quiet-test').extend('on-sub').enabled).toBe(true);
    const on = factory('ff-quiet-test:on');
    expect(on.name).not.toBe('quietDebug');
    expect(on.enabled).toBe(true);
    const written: unknown[][] = [];
    on.log = (...args: unknown[]) => void written.push(args);
    on('written %d', 42);
    expect(written).toHaveLength(1);
    expect(written[0]).toEqual([expect.stringContaining('ff-quiet-test:on written %d'), 42]);
    // The factory's own functions are debug's.
    expect(factory.enabled('ff-quiet-test:on')).toBe(true);
    expect(quietFactory(factory)).toBe(factory);
  } finally {
    createDebug.enable(before);
  }
});

/** Loads quiet-debug, then mqtt-packet, in a fresh Node (as the service starts); prints the namespaces debug itself was asked to build. */
function namespacesBuiltForMqttPacket(debugEnv: string): string[] {
  const script = `
    import { createRequire } from 'node:module';
    const req = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))});
    const fromPacket = createRequire(req.resolve('mqtt-packet'));
    const id = fromPacket.resolve('debug');
    const real = fromPacket(id);
    const built = [];
    // Counts what reaches debug's own factory, under whatever quiet-debug puts around it.
    fromPacket.cache[id].exports = Object.assign((ns) => (built.push(ns), real(ns)), real);
    await import(${JSON.stringify(path.join(ROOT, 'src/quiet-debug.ts'))});
    const mqttPacket = fromPacket('mqtt-packet');
    mqttPacket.parser().parse(mqttPacket.generate({ cmd: 'pingreq' }));
    console.log(JSON.stringify(built.filter((ns) => ns.startsWith('mqtt-packet'))));
  `;
  const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, DEBUG: debugEnv, NODE_OPTIONS: '' },
    encoding: 'utf8',
  });
  expect(res.status).toBe(0);
  return JSON.parse(res.stdout.trim().split('\n').pop()!) as string[];
}

test('mqtt-packet loaded after it builds no debug logger while its namespaces are off, and both when DEBUG names them', () => {
  expect(namespacesBuiltForMqttPacket('')).toEqual([]);
  expect(namespacesBuiltForMqttPacket('mqtt-packet:*').sort()).toEqual([
    'mqtt-packet:parser',
    'mqtt-packet:writeToStream',
  ]);
});

test.each([
  'src/main.ts',
  'src/demo.ts',
  'devices-sim/cli.ts',
  'devices-sim/scale-check.ts',
  'devices-sim/scale-broker-child.ts',
  'scripts/bench.ts',
  'scripts/chaos.ts',
  'scripts/rollout.ts',
  'scripts/lib/bench-sim-child.ts',
])('%s imports quiet-debug before anything else', (file) => {
  const source = readFileSync(path.join(ROOT, file), 'utf8');
  const firstImport = source.match(/^import .*$/m)?.[0];
  expect(firstImport).toMatch(/^import '(\.\.\/)*(\.\/)?(src\/)?quiet-debug\.js';$/);
});
