/**
 * The service's Node flags (scripts/lib/processes.ts, used by the bench and chaos runs) are the ones
 * every way of starting it passes: what is measured is what is deployed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, SERVICE_NODE_FLAGS } from '../../scripts/lib/processes.js';

const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const cmd = /^CMD (.*)$/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1];

test('there are flags to check', () => {
  expect(SERVICE_NODE_FLAGS.length).toBeGreaterThan(0);
});

test.each(['start', 'dev', 'demo'])('npm run %s passes them to the service', (name) => {
  // The service's command: the last step of the script (demo builds the portal first).
  const command = scripts[name].split('&&').at(-1)!.trim().split(/\s+/);
  expect(command.slice(1, 1 + SERVICE_NODE_FLAGS.length)).toEqual(SERVICE_NODE_FLAGS);
  expect(command.at(-1)).toMatch(/(main|demo)\.(ts|js)$/);
});

test("the Dockerfile's CMD passes them to the service", () => {
  const argv = JSON.parse(cmd!) as string[];
  expect(argv).toEqual(['node', ...SERVICE_NODE_FLAGS, 'dist/src/main.js']);
});
