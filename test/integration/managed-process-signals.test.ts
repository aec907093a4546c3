/**
 * A script that starts processes through ManagedProcess (the bench, chaos runs) and is told to stop
 * takes them with it: SIGTERM to the script alone (`kill`, `timeout`) left its redis-server and
 * service processes running before. A real script, real children, real signals.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../../scripts/lib/processes.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('SIGTERM to the script stops its children, the one ignoring SIGTERM too, and exits 143', async () => {
  const lib = pathToFileURL(path.join(ROOT, 'scripts/lib/processes.ts')).href;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ff-signals-'));
  // Two children, each ready once its handlers are in place (it writes a file): one that stops on
  // SIGTERM, one that ignores it (only SIGKILL ends it).
  const script = `
    import { existsSync } from 'node:fs';
    import path from 'node:path';
    import { ManagedProcess } from ${JSON.stringify(lib)};
    const child = (name, code) => {
      const flag = path.join(${JSON.stringify(dir)}, name);
      const body = code + "require('node:fs').writeFileSync(" + JSON.stringify(flag) + ", ''); setInterval(() => {}, 1000);";
      return new ManagedProcess(name, process.execPath, ['-e', body], process.env, null, async () => existsSync(flag));
    };
    const plain = child('plain', '');
    const stubborn = child('stubborn', "process.on('SIGTERM', () => {});");
    await plain.start();
    await stubborn.start();
    console.log(JSON.stringify([plain.pid, stubborn.pid]));`;
  const pids: number[] = [];
  try {
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    pids.push(...(JSON.parse(line.toString()) as number[]));
    expect(pids).toHaveLength(2);
    expect(pids.every(alive)).toBe(true);

    const exited = once(parent, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    parent.kill('SIGTERM');
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 143, signal: null });
    // The parent exits once both are gone (the stubborn one after the grace period, by SIGKILL); a
    // killed child may linger as a zombie of init for an instant, so this waits for the kernel too.
    for (const pid of pids) {
      for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
      expect(alive(pid)).toBe(false);
    }
  } finally {
    // Without the feature the children outlive the script: not past this test.
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}, 30_000);
