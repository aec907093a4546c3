/**
 * All metrics of one service process in one place: the composition root creates this, hands its
 * observers to the driver and the status publisher, and points it at the broker, the service's MQTT
 * client, the queue, the worker and Redis as the roles start.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EmbeddedBroker } from '../../broker/broker.js';
import type { ExecutionWorker } from '../queue/execution-worker.js';
import type { PublishLatencyObserver } from '../status/status-publisher.js';
import { ExecutionMetrics } from './execution-metrics.js';
import { createMetricsRegistry, METRIC_PREFIX } from './metrics-registry.js';
import { registerBrokerMetrics, registerServiceClientMetrics } from './mqtt-metrics.js';
import { registerQueueMetrics } from './queue-metrics.js';
import { startRedisProbe, type RedisProbe } from './redis-metrics.js';
import { registerStatusPublishMetrics } from './status-metrics.js';

export class ServiceMetrics {
  readonly registry: Registry = createMetricsRegistry();
  readonly executions = new ExecutionMetrics(this.registry);
  /** For the StatusPublisher: latency of each status publish. */
  readonly statusPublished: PublishLatencyObserver = registerStatusPublishMetrics(this.registry);
  private readonly deleted = new Counter({
    name: `${METRIC_PREFIX}jobs_deleted_total`,
    help: 'Finished jobs this process deleted from Redis after JOB_RETENTION_MS, and their executions (kind=job|execution)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  /** For the job retention: a pass deleted `jobs` jobs of `executions` executions. */
  readonly jobsDeleted = (jobs: number, executions: number): void => {
    this.deleted.inc({ kind: 'job' }, jobs);
    this.deleted.inc({ kind: 'execution' }, executions);
  };

  /** Samples Redis round trips until `stop()`. */
  watchRedis(redis: Redis, intervalMs?: number): RedisProbe {
    return startRedisProbe(this.registry, redis, intervalMs);
  }

  watchBroker(broker: EmbeddedBroker): void {
    registerBrokerMetrics(this.registry, broker);
  }

  watchServiceClient(mqtt: MqttClient): void {
    registerServiceClientMetrics(this.registry, mqtt);
  }

  watchQueue(queue: Queue): void {
    registerQueueMetrics(this.registry, queue);
  }

  /** Executions this process's worker supervises right now, and those in (or waiting for) their start. */
  watchWorker(worker: Pick<ExecutionWorker, 'running' | 'starts'>): void {
    new Gauge({
      name: `${METRIC_PREFIX}worker_active_executions`,
      help: "Executions this process's worker supervises right now",
      registers: [this.registry],
      collect() {
        this.set(worker.running());
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}worker_start_window_executions`,
      help: "Executions of this process's worker in their start (slot=starting) or waiting for a start slot (slot=waiting): WORKER_START_WINDOW",
      labelNames: ['slot'],
      registers: [this.registry],
      collect() {
        const { starting, waiting } = worker.starts();
        this.set({ slot: 'starting' }, starting);
        this.set({ slot: 'waiting' }, waiting);
      },
    });
  }
}
