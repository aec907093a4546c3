/**
 * The bench finds the machine's Mosquitto by its pid file, and by name when the file is gone (a
 * restart can race the old process's removal of it). Needs the machine's Mosquitto running, like
 * external-broker.test.ts: skipped where there is none.
 */
import { readFile } from 'node:fs/promises';
import { mosquittoPid } from '../../scripts/lib/bench-proc.js';

const PID_FILE = '/run/mosquitto/mosquitto.pid';
const running = await readFile(PID_FILE, 'utf8').then((t) => Number(t.trim()), () => null);
const withMosquitto = running ? describe : describe.skip;

withMosquitto('mosquittoPid (the machine Mosquitto)', () => {
  test('its pid file names it', async () => {
    expect(await mosquittoPid(PID_FILE)).toBe(running);
  });

  test('without the pid file it is found by name', async () => {
    expect(await mosquittoPid('/nonexistent/mosquitto.pid')).toBe(running);
  });
});
