/** Latency of the browser-side status publishes: from publish to the broker's PUBACK (or, published into the broker in-process, to routed). */
import { Histogram, type Registry } from 'prom-client';
import type { PublishLatencyObserver } from '../status/status-publisher.js';
import { METRIC_PREFIX } from './metrics-registry.js';

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Registers the histogram and returns the observer the StatusPublisher calls. */
export function registerStatusPublishMetrics(registry: Registry): PublishLatencyObserver {
  const latency = new Histogram({
    name: `${METRIC_PREFIX}status_publish_seconds`,
    help: 'Time from publishing a fleetflash/… status message to its PUBACK (or routing, when published into the broker in-process), by topic kind (job, execution, event, device)',
    labelNames: ['topic'],
    buckets: LATENCY_BUCKETS_S,
    registers: [registry],
  });
  return (kind, seconds) => latency.observe({ topic: kind }, seconds);
}
