/**
 * The bench's inspector helpers against a real Node process started with `--inspect`: an allocation
 * profile counts the garbage the process makes (collected objects included), close to what it
 * really allocated; a full collection runs through the same inspector.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { allocatedBytes, collectGarbage, sampleAllocations } from '../../scripts/lib/bench-inspector.js';
import { freePort } from '../../scripts/lib/processes.js';

const MB = 1024 * 1024;
let child: ChildProcess;
let port: number;

beforeAll(async () => {
  port = await freePort();
  // On each line of input: allocates 8,192 arrays of 511 numbers (~4 KB each on the V8 heap, ~32 MB),
  // keeps none of them, then says "done".
  const script = `
    process.stdin.on('data', () => {
      let sum = 0;
      for (let i = 0; i < 8192; i++) sum += new Array(511).fill(1).length;
      process.stdout.write('done ' + sum + '\\n');
    });`;
  child = spawn(process.execPath, [`--inspect=127.0.0.1:${port}`, '-e', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // Node says so on stderr once the inspector listens.
  await new Promise<void>((resolve) => {
    let said = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes('Debugger listening')) resolve();
    });
  });
});

afterAll(async () => {
  child.kill();
  await once(child, 'exit');
});

test('an allocation profile counts what the process allocated and dropped', async () => {
  const sampler = await sampleAllocations(port, 16 * 1024);
  const done = once(child.stdout!, 'data');
  child.stdin!.write('go\n');
  expect(String((await done)[0])).toContain(`done ${8192 * 511}`);
  const profile = await sampler.stop();
  const bytes = allocatedBytes(profile.head);
  // A statistical estimate: within a factor of 1.5 of the 32 MB, none of which was still live.
  expect(bytes).toBeGreaterThan((32 * MB) / 1.5);
  expect(bytes).toBeLessThan(32 * MB * 1.5);
});

test('a full garbage collection runs through the inspector', async () => {
  await expect(collectGarbage(port)).resolves.toBeUndefined();
});

test('allocatedBytes adds up every node of the tree', () => {
  const frame = { functionName: '', url: '', lineNumber: 0, columnNumber: 0 };
  const leaf = (selfSize: number) => ({ callFrame: frame, selfSize, children: [] });
  expect(
    allocatedBytes({
      callFrame: frame,
      selfSize: 1,
      children: [leaf(2), { ...leaf(3), children: [leaf(4)] }],
    }),
  ).toBe(10);
});
