/** Drop counters for device payloads, and the log-line limit that keeps a garbage flood out of the logs. */
import { pino } from 'pino';
import {
  DevicePayloadStats,
  LOG_LINES_PER_WINDOW,
  LOG_WINDOW_MS,
} from '../../src/mqtt/device-payload-stats.js';

function capture() {
  const lines: { msg: string; reason: string; portalId?: string }[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

test('every drop is counted by source and reason; log lines are limited per source and reason per window', () => {
  let now = 1_000_000;
  const stats = new DevicePayloadStats(() => now);
  const { logger, lines } = capture();
  for (let i = 0; i < LOG_LINES_PER_WINDOW + 5; i++) {
    stats.drop(
      'fleet-monitor',
      'malformed',
      logger,
      { portalId: 'c0619ab1d2e3' },
      'dropped malformed notification',
    );
  }
  stats.drop('fleet-monitor', 'oversize', logger, {}, 'dropped oversize notification');
  stats.drop('device-link', 'malformed', logger, {}, 'dropped malformed RPC message');

  expect(stats.snapshot()).toEqual({
    dropped: {
      'fleet-monitor': {
        oversize: 1,
        malformed: LOG_LINES_PER_WINDOW + 5,
        invalid: 0,
        'over-limit': 0,
        'out-of-order': 0,
      },
      'device-link': { oversize: 0, malformed: 1, invalid: 0, 'over-limit': 0, 'out-of-order': 0 },
    },
    suppressedLogLines: 5,
  });
  // Another reason or source has its own budget.
  expect(lines.filter((l) => l.reason === 'malformed')).toHaveLength(LOG_LINES_PER_WINDOW + 1);
  expect(lines.filter((l) => l.reason === 'oversize')).toHaveLength(1);
  expect(lines[0]).toMatchObject({
    msg: 'dropped malformed notification',
    portalId: 'c0619ab1d2e3',
    reason: 'malformed',
  });

  // A new window logs again.
  now += LOG_WINDOW_MS;
  stats.drop('fleet-monitor', 'malformed', logger, {}, 'dropped malformed notification');
  expect(lines.filter((l) => l.reason === 'malformed')).toHaveLength(LOG_LINES_PER_WINDOW + 2);
  expect(stats.snapshot().suppressedLogLines).toBe(5);
});

test('a snapshot is a copy', () => {
  const stats = new DevicePayloadStats();
  const before = stats.snapshot();
  stats.drop('device-link', 'invalid', capture().logger, {}, 'x');
  expect(before.dropped['device-link'].invalid).toBe(0);
  expect(stats.snapshot().dropped['device-link'].invalid).toBe(1);
});
