/** `npm run bench` flags: the simulator's timing spread. */
import { TYPICAL_TIMING_SPREAD } from '../../devices-sim/index.js';
import { parseBenchArgs, runOrder, UsageError } from '../../scripts/lib/bench-args.js';

test('the fleet runs at the typical timing spread unless told otherwise; 0 is lock step', () => {
  expect(parseBenchArgs([]).timingSpread).toBe(TYPICAL_TIMING_SPREAD);
  expect(parseBenchArgs(['--quick']).timingSpread).toBe(TYPICAL_TIMING_SPREAD);
  expect(parseBenchArgs(['--timing-spread', '0']).timingSpread).toBe(0);
  expect(parseBenchArgs(['--timing-spread', '0.35', '--sites', '500'])).toMatchObject({
    timingSpread: 0.35,
    sites: 500,
  });
});

test('a spread outside 0 ≤ s < 1 is refused with the flag named', () => {
  for (const bad of ['1', '-0.2', 'x', '']) {
    expect(() => parseBenchArgs(['--timing-spread', bad])).toThrow(UsageError);
    expect(() => parseBenchArgs(['--timing-spread', bad])).toThrow(
      /--timing-spread must be a number >= 0 and < 1/,
    );
  }
});

test('the brokers alternate, every other round in reverse, so neither always runs first', () => {
  const order = runOrder(['embedded', 'mosquitto'], 3).map((r) => `${r.mode}${r.run}`);
  expect(order).toEqual(['embedded1', 'mosquitto1', 'mosquitto2', 'embedded2', 'embedded3', 'mosquitto3']);
  expect(runOrder(['embedded'], 2).map((r) => r.run)).toEqual([1, 2]);
});

test("the Mosquitto runs' watcher uses TCP unless a WebSocket listener is named; a bad port is refused", () => {
  expect(parseBenchArgs([]).mosquittoWsPort).toBeNull();
  expect(parseBenchArgs(['--mosquitto-port', '1884', '--mosquitto-ws-port', '9884'])).toMatchObject({
    mosquittoPort: 1884,
    mosquittoWsPort: 9884,
  });
  for (const bad of ['0', '65536', 'x']) {
    expect(() => parseBenchArgs(['--mosquitto-ws-port', bad])).toThrow(/--mosquitto-ws-port must be an integer 1\.\.65535/);
  }
});

test("the Mosquitto runs use the machine's (1883) unless another port is named; a bad port is refused", () => {
  expect(parseBenchArgs([]).mosquittoPort).toBe(1883);
  expect(parseBenchArgs(['--mosquitto-port', '1884', '--broker', 'mosquitto'])).toMatchObject({
    mosquittoPort: 1884,
    brokers: ['mosquitto'],
  });
  for (const bad of ['0', '65536', 'x', '1883.5']) {
    expect(() => parseBenchArgs(['--mosquitto-port', bad])).toThrow(
      /--mosquitto-port must be an integer 1\.\.65535/,
    );
  }
});
