/**
 * The bench finds the Mosquitto it compares with by the socket listening on its port (another
 * Mosquitto may run beside the machine's), and the machine's by its pid file, and by name when the
 * file is gone (a restart can race the old process's removal of it). The machine's Mosquitto tests
 * need it running, like external-broker.test.ts: skipped where there is none.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { listeningPid, machineMosquittoPid, mosquittoPid } from '../../scripts/lib/bench-proc.js';

const PID_FILE = '/run/mosquitto/mosquitto.pid';
const running = await readFile(PID_FILE, 'utf8').then((t) => Number(t.trim()), () => null);
const withMosquitto = running ? describe : describe.skip;

describe('listeningPid', () => {
  test('names the process holding the listening socket of a port, and nothing once it is closed', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      expect(await listeningPid(port)).toBe(process.pid);
      expect(await mosquittoPid(port)).toBe(process.pid);
    } finally {
      await new Promise((r) => server.close(r));
    }
    expect(await listeningPid(port)).toBeNull();
    // Not the machine's port: no fallback to the machine's Mosquitto.
    expect(await mosquittoPid(port)).toBeNull();
  });
});

withMosquitto('the machine Mosquitto', () => {
  test('is the process listening on 1883', async () => {
    expect(await mosquittoPid()).toBe(running);
    expect(await listeningPid(1883)).toBe(running);
  });

  test('its pid file names it', async () => {
    expect(await machineMosquittoPid(PID_FILE)).toBe(running);
  });

  test('without the pid file it is found by name', async () => {
    expect(await machineMosquittoPid('/nonexistent/mosquitto.pid')).toBe(running);
  });
});
