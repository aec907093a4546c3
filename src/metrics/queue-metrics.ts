/**
 * Queue depth and age, read from BullMQ when Prometheus scrapes (not on a timer: nothing is read while
 * nobody looks). Every process that exposes metrics reports the same shared queue, so aggregate with
 * `max` across instances, never `sum`.
 */
import type { Queue } from 'bullmq';
import { Gauge, type Registry } from 'prom-client';
import { METRIC_PREFIX } from './metrics-registry.js';

/** BullMQ states worth watching; `waiting` is the backlog no worker has taken yet. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;

/** Registers the queue gauges; they query `queue` at each scrape. */
export function registerQueueMetrics(registry: Registry, queue: Queue, now: () => number = Date.now): void {
  new Gauge({
    name: `${METRIC_PREFIX}queue_jobs`,
    help: 'Queue jobs (executions) per BullMQ state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      try {
        const counts = await queue.getJobCounts(...QUEUE_STATES);
        for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
      } catch {
        // Redis unreachable: keep the last figures; fleetflash_redis_up tells why they stopped moving.
      }
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}queue_oldest_waiting_age_seconds`,
    help: 'Age of the oldest execution waiting for a worker (0 when none waits)',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      try {
        const oldest = await queue.getJobs(['waiting', 'prioritized'], 0, 0, true);
        const first = oldest.reduce<number | null>((min, j) => (min === null || j.timestamp < min ? j.timestamp : min), null);
        this.set({ queue: queue.name }, first === null ? 0 : Math.max(0, (now() - first) / 1000));
      } catch {
        // as above
      }
    },
  });
}
