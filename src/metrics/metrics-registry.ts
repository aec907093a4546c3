/**
 * The Prometheus registry of one fleetflash process. One registry per service (not prom-client's
 * global one), so two services in one process (tests, the demo) never share or double-register metrics.
 * Metric names follow the Prometheus conventions: `fleetflash_` prefix, base units (seconds), `_total`
 * for counters.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export { Registry };

/** Prefix of every fleetflash metric. */
export const METRIC_PREFIX = 'fleetflash_';

/** A registry with Node's process metrics (CPU, memory, event-loop lag, GC) under `fleetflash_process_…`/`fleetflash_nodejs_…`. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

/** Renders the registry in the Prometheus text format; a failing collector leaves the others intact. */
export async function renderMetrics(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
