/**
 * Redis round-trip time, sampled with PING on a timer (a histogram needs samples between scrapes),
 * and whether the last PING answered.
 */
import type { Redis } from 'ioredis';
import { Gauge, Histogram, type Registry } from 'prom-client';
import { METRIC_PREFIX } from './metrics-registry.js';

/** Default PING interval. */
export const REDIS_PING_INTERVAL_MS = 5000;
/** A PING slower than this counts as down. */
const PING_TIMEOUT_MS = 2000;
const RTT_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];

export interface RedisProbe {
  /** One PING now (also what the timer runs). */
  sample(): Promise<void>;
  stop(): void;
}

/** Starts sampling `redis` every `intervalMs`; the timer does not keep the process alive. */
export function startRedisProbe(registry: Registry, redis: Redis, intervalMs = REDIS_PING_INTERVAL_MS): RedisProbe {
  const rtt = new Histogram({
    name: `${METRIC_PREFIX}redis_ping_seconds`,
    help: 'Round-trip time of a Redis PING from this process',
    buckets: RTT_BUCKETS_S,
    registers: [registry],
  });
  const up = new Gauge({
    name: `${METRIC_PREFIX}redis_up`,
    help: '1 when the last Redis PING answered within 2 s, else 0',
    registers: [registry],
  });
  let running: Promise<void> | null = null;
  const sample = (): Promise<void> => {
    running ??= (async () => {
      const started = process.hrtime.bigint();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          redis.ping(),
          new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), PING_TIMEOUT_MS))),
        ]);
        rtt.observe(Number(process.hrtime.bigint() - started) / 1e9);
        up.set(1);
      } catch {
        up.set(0);
      } finally {
        clearTimeout(timer);
        running = null;
      }
    })();
    return running;
  };
  const timer = setInterval(() => void sample(), intervalMs);
  timer.unref();
  void sample();
  return {
    sample,
    stop: () => clearInterval(timer),
  };
}
