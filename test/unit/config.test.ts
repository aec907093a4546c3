/**
 * Which combinations of roles and settings the service refuses to start with, by the variable to fix.
 */
import { parseConfig } from '../../src/config.js';
import { configRefusal } from '../helpers/config-refusal.js';

const BASE = {
  SIGNING_SECRET: 'x'.repeat(32),
  MQTT_SERVICE_PASSWORD: 'p',
  API_TOKENS: 'operator:a-token-of-16-chars',
};

/** The variable a start with `env` is refused for, or null when it starts. */
function refusedFor(env: Record<string, string>): string | null {
  return configRefusal({ ...BASE, ...env })?.variable ?? null;
}

describe('firmware download URL of a worker', () => {
  test('ROLE=broker,worker needs PUBLIC_URL: its PORT serves no firmware', () => {
    expect(refusedFor({ ROLE: 'broker,worker' })).toBe('PUBLIC_URL');
    expect(refusedFor({ ROLE: 'worker,broker' })).toBe('PUBLIC_URL');
    const config = parseConfig({ ...BASE, ROLE: 'broker,worker', PUBLIC_URL: 'https://updates.example.com' });
    expect(config.publicUrl).toBe('https://updates.example.com');
  });

  test('a worker beside the api, or alone (an api on this host), may leave it out', () => {
    for (const ROLE of ['api,broker,worker', 'api,worker', 'worker', 'api,broker', 'broker']) {
      expect([ROLE, refusedFor({ ROLE })]).toEqual([ROLE, null]);
    }
  });

  test('the error names the variable and says what to give', () => {
    expect(() => parseConfig({ ...BASE, ROLE: 'broker,worker' })).toThrow(
      "PUBLIC_URL: is required for ROLE=broker,worker (its PORT serves no firmware: give the api's URL)",
    );
  });
});

describe('job retention', () => {
  test('off by default: finished jobs are kept for good', () => {
    expect(parseConfig(BASE).jobRetentionMs).toBe(0);
    expect(refusedFor({ RETAINED_JOB_TTL_MS: '0' })).toBeNull();
  });

  test('needs RETAINED_JOB_TTL_MS set and no longer: the broker lets go of a job first', () => {
    const day = 86_400_000;
    expect(parseConfig({ ...BASE, JOB_RETENTION_MS: String(90 * day) }).jobRetentionMs).toBe(90 * day);
    expect(refusedFor({ JOB_RETENTION_MS: String(day), RETAINED_JOB_TTL_MS: String(day) })).toBeNull();
    expect(refusedFor({ JOB_RETENTION_MS: String(day - 1) })).toBe('JOB_RETENTION_MS');
    expect(refusedFor({ JOB_RETENTION_MS: String(day), RETAINED_JOB_TTL_MS: '0' })).toBe('JOB_RETENTION_MS');
    expect(refusedFor({ JOB_RETENTION_MS: '-1' })).toBe('JOB_RETENTION_MS');
    expect(() => parseConfig({ ...BASE, JOB_RETENTION_MS: '1000' })).toThrow(
      "JOB_RETENTION_MS: needs RETAINED_JOB_TTL_MS between 1 and JOB_RETENTION_MS (1000), got 86400000: a job's retained records leave the broker before the job leaves Redis",
    );
  });
});
