/**
 * The composition root: starts the roles named in the config (api, broker, worker) with their
 * dependencies passed in, and stops them in the right order. `main.ts`, the demo and the
 * integration tests all start the service through here.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createBroker, type EmbeddedBroker } from '../../broker/broker.js';
import { createRequestListener } from '../api/app.js';
import { AuditLog } from '../audit/audit-log.js';
import { createMqttAuthenticator } from '../auth/mqtt-auth.js';
import { BrokerAuthHook } from '../auth/broker-auth-hook.js';
import { startBrokerAuthServer } from '../api/broker-auth-server.js';
import { OperatorAuth } from '../auth/operator-auth.js';
import { TokenSigner } from '../auth/tokens.js';
import type { Config } from '../config.js';
import { FleetMonitor, REINVENTORY_MIN_INTERVAL_MS } from '../fleet/fleet-monitor.js';
import { redisInventoryClaim } from '../fleet/inventory-claim.js';
import { abortJob, cancelExecution, cancelRemaining } from '../jobs/abort.js';
import { FirmwareUsage } from '../jobs/firmware-usage.js';
import { JobRetention } from '../jobs/job-retention.js';
import { JobLauncher } from '../jobs/launcher.js';
import { connectMqtt, waitConnected, type MqttClient } from '../mqtt/connect.js';
import { coalesceWrites } from '../net/write-coalescing.js';
import { DevicePayloadStats } from '../mqtt/device-payload-stats.js';
import { clientFeed } from '../mqtt/message-feed.js';
import { createExecutionQueue } from '../queue/execution-queue.js';
import { startExecutionWorker, type ExecutionWorker } from '../queue/execution-worker.js';
import { RetainedJobExpiry } from '../status/retained-expiry.js';
import { RetainedRestorer } from '../status/retained-restorer.js';
import { LISTEN_BACKLOG } from '../net/listen-backlog.js';
import { StatusPublisher } from '../status/status-publisher.js';
import { embeddedBrokerSink } from '../status/status-sink.js';
import { DeviceStore } from '../store/device-store.js';
import { FirmwareStore } from '../store/firmware-store.js';
import { JobStore } from '../store/job-store.js';
import { createKeys } from '../store/keys.js';
import { SiteStore } from '../store/site-store.js';
import { DeviceLink } from '../update/device-link.js';
import { loadCa, loadServerTls, serviceClientTls } from './tls.js';
import { createBrokerClusterBackend } from './broker-cluster.js';
import { redisConnectionOptions } from '../store/redis-connection.js';
import { endOnDisconnect } from '../store/redis-disconnect.js';
import { ReplicaWatch } from '../store/replica-watch.js';
import { mountQueueDashboard } from '../admin/queue-dashboard.js';
import { probeListener, startMetricsServer } from '../metrics/metrics-server.js';
import { listenHttp } from '../net/http-listener.js';
import { mountMetricsRoute } from '../metrics/metrics-route.js';
import { ServiceMetrics } from '../metrics/service-metrics.js';
import { systemClock, type Clock } from '../rollout/clock.js';
import { RolloutController, type RolloutControllerOptions } from '../rollout/rollout-controller.js';
import { RolloutStore } from '../rollout/rollout-store.js';

/** The portal: `web/` at the repository root, whether running from sources or from `dist/`. */
export const WEB_DIR = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../web'), path.resolve(here, '../../../web')];
  return candidates.find((dir) => existsSync(path.join(dir, 'index.html'))) ?? candidates[0];
})();

/** How long start-up waits for Redis and the broker (they may be restarting too). */
const STARTUP_WAIT_MS = 60_000;

export interface ServiceOptions {
  /** Poll a quiet device this often after the point of no return. */
  statusPollMs?: number;
  /** The rollout's clock (schedules, rate windows, retry backoff); default: wall time. Tests pass a fake one. */
  clock?: Clock;
  rollout?: Partial<RolloutControllerOptions>;
  /** How often the Redis round-trip metric is sampled; default 5 s. */
  redisPingIntervalMs?: number;
}

export interface Service {
  config: Readonly<Config>;
  /** Bound HTTP port (api role; the broker role without it: `/mqtt` and the probes), else null. */
  httpPort: number | null;
  /** Bound plain MQTT TCP port (broker role, unless MQTT_PLAIN=false), else null. */
  mqttPort: number | null;
  /** Bound MQTT-over-TLS port (broker role with TLS files), else null. */
  mqttsPort: number | null;
  /** The broker the service's own clients use. */
  mqttUrl: string;
  /** Bound port of the `METRICS_PORT` listener, else null. */
  metricsPort: number | null;
  /** Bound port of the `BROKER_AUTH_PORT` listener (the external broker's auth hook), else null. */
  brokerAuthPort: number | null;
  /** This process's Prometheus metrics. */
  metrics: ServiceMetrics;
  /** `http://127.0.0.1:<port>`, or `https://…` with TLS files (api role), else null. */
  httpUrl: string | null;
  /** Device payloads this process dropped or found out of order (fleet monitor and device link). */
  payloadStats: DevicePayloadStats;
  redis: Redis;
  jobs: JobStore;
  devices: DeviceStore;
  sites: SiteStore;
  firmware: FirmwareStore;
  broker: EmbeddedBroker | null;
  worker: ExecutionWorker | null;
  /** The rollout controller (worker role), else null. */
  rollout: RolloutController | null;
  close(): Promise<void>;
}

export async function startService(config: Readonly<Config>, logger: Logger, options: ServiceOptions = {}): Promise<Service> {
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) {
      await c().catch((err: Error) => logger.error({ err }, 'error while stopping'));
    }
  };
  try {
    return await start(config, logger, options, closers, close);
  } catch (err) {
    await close();
    throw err;
  }
}

async function start(
  config: Readonly<Config>,
  logger: Logger,
  options: ServiceOptions,
  closers: (() => Promise<void>)[],
  close: () => Promise<void>,
): Promise<Service> {
  // A write refused as a replica's (a failover behind one endpoint): the connection reconnects by
  // itself; the connections that only listen are moved by the watch (replica-watch.ts).
  const replicas = new ReplicaWatch(logger);
  closers.push(async () => replicas.stop());
  const redisOptions = redisConnectionOptions(config, replicas.refused);
  // Every command the stores' client writes in one event-loop iteration (the scripts of hundreds of
  // executions at fleet scale) leaves in one socket write (coalesceWrites below). Not ioredis'
  // auto-pipelining on top: its per-tick Pipeline (promises, one concatenated string of every
  // command) cost ~10 µs more CPU per command (10,000-device bench: -11 % service CPU per execution).
  // Its duplicates (the queue's, BullMQ's blocking ones, the rollout's subscriber) end when disconnected
  // while waiting to reconnect, so a shutdown during or after a Redis outage completes (redis-disconnect.ts).
  const redis = endOnDisconnect(new Redis({ ...redisOptions, maxRetriesPerRequest: null, lazyConnect: true }));
  // One write per event-loop iteration, on every (re)connection's socket.
  redis.on('connect', () => coalesceWrites(redis.stream));
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  await redis.connect().catch(async (err: Error) => {
    logger.warn({ err: err.message }, 'redis not reachable yet; waiting');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis not reachable within ${STARTUP_WAIT_MS} ms`)), STARTUP_WAIT_MS);
      redis.once('ready', () => (clearTimeout(timer), resolve()));
    });
  });
  closers.push(async () => void (await redis.quit()));
  // BullMQ gets a connection of its own without auto-pipelining (reported to break its job moves:
  // taskforcesh/bullmq#457).
  const queueRedis = redis.duplicate({ enableAutoPipelining: false, lazyConnect: false });
  queueRedis.on('error', (err) => logger.warn({ err: err.message }, 'redis (queue) connection error'));
  closers.push(async () => void (await queueRedis.quit()));
  const keys = createKeys(config.queuePrefix);
  const jobs = new JobStore(redis, keys);
  const devices = new DeviceStore(redis, keys);
  const sites = new SiteStore(redis, keys);
  const firmware = new FirmwareStore(redis, keys, config.firmwareDir, config.maxFirmwareBytes, config.firmwareCacheBytes);
  const tokens = new TokenSigner(config.signingSecret);
  // Who may connect to a broker: the embedded one's hook, or an external one's through the auth hook.
  const mqttAuthenticator = createMqttAuthenticator({
    serviceUser: config.mqttServiceUser,
    servicePassword: config.mqttServicePassword,
    sites,
    tokens,
  });
  const payloadStats = new DevicePayloadStats();
  const [serverTls, clientCa] = await Promise.all([loadServerTls(config.tls), loadCa(config.tlsCaFile)]);
  const clock = options.clock ?? systemClock;
  const rolloutStore = new RolloutStore(redis, keys);
  const usage = new FirmwareUsage(redis, keys, jobs, firmware, logger.child({ component: 'firmware' }));
  const metrics = new ServiceMetrics();
  const redisProbe = metrics.watchRedis(redis, options.redisPingIntervalMs);
  closers.push(async () => redisProbe.stop());

  let broker: EmbeddedBroker | null = null;
  let mqttPort: number | null = null;
  let mqttsPort: number | null = null;
  if (config.roles.has('broker')) {
    // Several api,broker instances share one broker state through Redis (closed after the broker: closers run in reverse).
    const brokerId = config.brokerId ?? randomUUID();
    const cluster =
      config.brokerCluster === 'redis'
        ? createBrokerClusterBackend(redisOptions, config.queuePrefix, logger.child({ component: 'broker-cluster' }), replicas)
        : null;
    if (cluster) closers.push(() => cluster.close());
    broker = await createBroker({
      ...(cluster ? { persistence: cluster.persistence, mq: cluster.mq } : {}),
      id: brokerId,
      authenticate: mqttAuthenticator,
      logger: logger.child({ component: 'broker' }),
      connectRatePerMinute: config.mqttConnectRatePerMin,
      maxPacketBytes: config.mqttMaxPacketBytes,
    });
    const b = broker;
    closers.push(() => b.close());
    metrics.watchBroker(broker);
    if (config.mqttPlain) {
      mqttPort = await broker.listen(config.mqttPort, config.host);
      logger.info({ port: mqttPort }, 'MQTT broker listening');
    }
    if (serverTls) {
      mqttsPort = await broker.listenTls(config.mqttsPort, config.host, { key: serverTls.key, cert: serverTls.cert });
      logger.info({ port: mqttsPort }, 'MQTT broker listening (TLS)');
    }
  }
  // Our own broker over loopback: plainly when it listens plainly, else over TLS pinned to our certificate.
  const ownTls = config.mqttUrl === null && mqttPort === null && mqttsPort !== null ? serverTls : null;
  const mqttUrl =
    config.mqttUrl ?? (ownTls ? `mqtts://127.0.0.1:${mqttsPort}` : `mqtt://127.0.0.1:${mqttPort ?? config.mqttPort}`);

  const roleName = [...config.roles].join('-');
  const mqtt: MqttClient = connectMqtt(mqttUrl, {
    clientId: `svc-${roleName}-${Math.random().toString(36).slice(2, 10)}`,
    username: config.mqttServiceUser,
    password: config.mqttServicePassword,
    clean: true,
    // Jittered, so a fleet of service processes does not reconnect in lockstep after a broker restart.
    reconnectPeriod: 500 + Math.floor(Math.random() * 1000),
    ...serviceClientTls(clientCa, ownTls),
  }, { coalesceWrites: true });
  mqtt.on('error', (err) => logger.warn({ err: err.message }, 'service MQTT client error'));
  mqtt.on('reconnect', () => logger.info('service MQTT client reconnecting'));
  // With the broker away mqtt.js would wait for its outgoing messages to drain, i.e. for the broker.
  closers.push(() => mqtt.endAsync(!mqtt.connected));
  // A broker that is restarting is waited for; wrong credentials fail at once.
  await waitConnected(mqtt, STARTUP_WAIT_MS);
  metrics.watchServiceClient(mqtt);
  // Retained records straight into the broker when it runs here, in memory, and our client talks to it: status-sink.ts.
  const retainedSink =
    broker && config.mqttUrl === null && config.brokerCluster === 'none' ? embeddedBrokerSink(broker.aedes) : mqtt;
  const publisher = new StatusPublisher(mqtt, logger.child({ component: 'status' }), undefined, metrics.statusPublished, retainedSink);
  closers.push(() => flushWhileConnected(mqtt, publisher, logger));

  const queue = createExecutionQueue(queueRedis, config.queuePrefix);
  // Without a listener BullMQ prints its connection's errors (Redis restarting, a failover) to stderr.
  queue.on('error', (err) => logger.warn({ err: err.message }, 'queue connection error'));
  closers.push(() => queue.close());
  metrics.watchQueue(queue);
  const readiness = async () => {
    const checks = {
      redis: await redis.ping().then(() => true, () => false),
      mqtt: mqtt.connected,
      ...(worker ? { worker: worker.isRunning() } : {}),
    };
    return { ok: Object.values(checks).every(Boolean), checks };
  };

  let httpPort: number | null = null;
  let httpUrl: string | null = null;
  // PORT's server, HTTPS with the TLS files: the api's, or a broker-only process's WebSocket port.
  const httpServer = (listener: http.RequestListener) =>
    serverTls ? https.createServer({ key: serverTls.key, cert: serverTls.cert }, listener) : http.createServer(listener);
  if (config.roles.has('api')) {
    const monitor = new FleetMonitor(
      mqtt,
      devices,
      jobs,
      publisher,
      logger.child({ component: 'fleet' }),
      payloadStats,
      redisInventoryClaim(redis, config.queuePrefix, REINVENTORY_MIN_INTERVAL_MS),
      // Straight from the broker when it runs here and is the one the service uses: message-feed.ts.
      broker && config.mqttUrl === null ? broker : clientFeed(mqtt),
    );
    await monitor.start();
    closers.push(() => monitor.stop());
    // An in-memory broker forgets retained state when it restarts: put it back when it is gone. A broker
    // that keeps it gets the recent jobs again at start (what a dead predecessor may not have published).
    const restorer = new RetainedRestorer(
      jobs,
      devices,
      publisher,
      logger.child({ component: 'restore' }),
      () => rolloutStore.activeJobs(),
      config.retainedJobTtlMs,
    );
    const restore = () => void restorer.restoreIfLost(mqtt).catch((err: Error) => logger.warn({ err }, 'retained restore failed'));
    mqtt.on('connect', restore);
    restore();
    closers.push(async () => {
      mqtt.off('connect', restore);
      restorer.stop();
    });
    // Finished jobs' retained records leave the broker after RETAINED_JOB_TTL_MS: its memory stays bounded.
    const expiry = new RetainedJobExpiry({
      redis,
      keys,
      publisher,
      logger: logger.child({ component: 'status' }),
      ttlMs: config.retainedJobTtlMs,
    });
    expiry.start();
    closers.push(() => expiry.stop());
    // Finished jobs leave Redis after JOB_RETENTION_MS (0: kept for good): its memory stays bounded too.
    const retention = new JobRetention({
      redis,
      keys,
      logger: logger.child({ component: 'retention' }),
      retentionMs: config.jobRetentionMs,
      onDeleted: metrics.jobsDeleted,
    });
    retention.start();
    closers.push(() => retention.stop());
    const launcher = new JobLauncher({
      jobs,
      devices,
      rollout: rolloutStore,
      usage,
      keys,
      publisher,
      defaultTimeouts: config.defaultTimeouts,
      maxDevicesPerJob: config.maxDevicesPerJob,
      clock,
      logger: logger.child({ component: 'launcher' }),
    });
    const listener = createRequestListener({
      config,
      logger: logger.child({ component: 'api' }),
      operators: new OperatorAuth(config.apiTokens),
      tokens,
      jobs,
      devices,
      firmware,
      sites,
      audit: new AuditLog(redis, keys, config.auditMaxEntries),
      launcher,
      abort: (jobId, by) => abortJob({ jobs, queue, publisher, logger }, jobId, by),
      cancelExecution: (jobId, deviceId, by) => cancelExecution({ jobs, queue, publisher, logger }, jobId, deviceId, by),
      deleteFirmware: (firmwareId, by) => usage.delete(firmwareId, by),
      readiness,
      mqttWsUrl: (req) => {
        if (config.mqttBrowserUrl) return config.mqttBrowserUrl;
        if (!broker) return null;
        const host = req.get('host') ?? `127.0.0.1:${httpPort}`;
        return `${req.protocol === 'https' ? 'wss' : 'ws'}://${host}/mqtt`;
      },
      webDir: WEB_DIR,
      mount: (app, guards) => {
        mountMetricsRoute(app, guards, metrics.registry);
        mountQueueDashboard(app, guards, [queue]);
      },
    });
    const s = httpServer(listener);
    if (broker) broker.attachWebSocket(s, '/mqtt');
    const server = await listenHttp(s, config.port, config.host, LISTEN_BACKLOG);
    closers.push(() => server.close());
    httpPort = server.port;
    httpUrl = `${serverTls ? 'https' : 'http'}://127.0.0.1:${httpPort}`;
    logger.info({ port: httpPort }, 'HTTP API listening');
  }

  if (broker && httpPort === null) {
    // The broker without the api role: browsers still reach it over WebSocket (MQTT_BROWSER_URL of
    // the api processes), and a load balancer probes it, on PORT.
    const s = httpServer(probeListener(readiness, logger));
    broker.attachWebSocket(s, '/mqtt');
    // Every open portal reconnects at once after a broker restart: the same accept queue as the api's.
    const server = await listenHttp(s, config.port, config.host, LISTEN_BACKLOG);
    closers.push(() => server.close());
    httpPort = server.port;
    logger.info({ port: httpPort }, 'MQTT over WebSocket listening at /mqtt');
  }

  let worker: ExecutionWorker | null = null;
  let rollout: RolloutController | null = null;
  if (config.roles.has('worker')) {
    const link = new DeviceLink(mqtt, logger.child({ component: 'device-link' }), payloadStats);
    closers.push(async () => link.close());
    const downloadBase = config.publicUrl ?? `${serverTls ? 'https' : 'http'}://127.0.0.1:${httpPort ?? config.port}`;
    worker = startExecutionWorker({
      connection: queueRedis,
      prefix: config.queuePrefix,
      concurrency: config.workerConcurrency,
      startWindow: config.workerStartWindow,
      lockDurationMs: config.lockDurationMs,
      stalledIntervalMs: config.stalledIntervalMs,
      jobs,
      firmware,
      logger: logger.child({ component: 'worker' }),
      driver: {
        jobs,
        publisher,
        link,
        logger: logger.child({ component: 'execution' }),
        rpcTimeoutMs: config.rpcTimeoutMs,
        pollMs: options.statusPollMs ?? 5000,
        now: () => clock.now(),
        onSaved: (previous, next) => metrics.executions.saved(previous, next),
        downloadUrl: (fw, executionId) =>
          `${downloadBase}/firmware/${fw.sha256}?token=${tokens.downloadToken(fw.sha256, executionId, config.downloadTokenTtlMs)}`,
      },
    });
    const w = worker;
    closers.push(() => w.close());
    metrics.watchWorker(w);
    logger.info({ concurrency: config.workerConcurrency, startWindow: config.workerStartWindow }, 'execution worker started');
    // The rollout controller releases executions into the queue; it stops (closers run in reverse) before the worker hands over.
    const controller = new RolloutController(
      {
        redis,
        keys,
        store: rolloutStore,
        queue,
        publisher,
        abort: (jobId, reason) => abortJob({ jobs, queue, publisher, logger }, jobId, 'rollout', reason),
        finishAbort: (jobId, reason) => cancelRemaining({ jobs, queue, publisher, logger }, jobId, reason),
        replicas,
        clock,
        logger: logger.child({ component: 'rollout' }),
      },
      options.rollout,
    );
    rollout = controller;
    await controller.start();
    closers.push(() => controller.close());
  }

  let metricsPort: number | null = null;
  if (config.metricsPort !== null) {
    const server = await startMetricsServer({
      registry: metrics.registry,
      readiness,
      port: config.metricsPort,
      host: config.host,
      logger: logger.child({ component: 'metrics' }),
    });
    closers.push(() => server.close());
    metricsPort = server.port;
    logger.info({ port: metricsPort }, 'metrics listening');
  }

  let brokerAuthPort: number | null = null;
  if (config.brokerAuthPort !== null) {
    const hook = new BrokerAuthHook({ authenticate: mqttAuthenticator, serviceUser: config.mqttServiceUser, redis, keys });
    const server = await startBrokerAuthServer({
      hook,
      port: config.brokerAuthPort,
      host: config.host,
      token: config.brokerAuthToken,
      logger: logger.child({ component: 'broker-auth' }),
    });
    closers.push(() => server.close());
    brokerAuthPort = server.port;
    logger.info({ port: brokerAuthPort, token: config.brokerAuthToken !== null }, 'broker auth hook listening');
  }

  return {
    config,
    metricsPort,
    brokerAuthPort,
    metrics,
    httpPort,
    mqttPort,
    mqttsPort,
    mqttUrl,
    httpUrl,
    payloadStats,
    redis,
    jobs,
    devices,
    sites,
    firmware,
    broker,
    worker,
    rollout,
    close,
  };
}

/**
 * Waits for the broker to acknowledge the status publishes sent so far, while it is there to: with
 * the broker away (stopped with us, restarting) nothing would ever answer and the shutdown would
 * wait for it to come back. What is not acknowledged is in Redis, and a broker that lost it gets it
 * back from the api role's restorer (retained-restorer.ts).
 */
async function flushWhileConnected(mqtt: MqttClient, publisher: StatusPublisher, logger: Logger): Promise<void> {
  let gone: (() => void) | undefined;
  const away = new Promise<void>((resolve) => {
    gone = resolve;
    if (!mqtt.connected) resolve();
    mqtt.once('close', resolve);
  });
  try {
    await Promise.race([publisher.flush(), away]);
  } finally {
    mqtt.off('close', gone!);
  }
  const left = publisher.unacknowledged;
  if (left > 0) logger.warn({ unacknowledged: left }, 'broker away at shutdown: status publishes left unacknowledged (they are in Redis)');
}
