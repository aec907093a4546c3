/**
 * MQTT metrics: the embedded broker's connections by client kind, messages in (published by clients
 * to this instance) and out (delivered by this instance to its clients), and what it refused; and
 * the service's own MQTT client's messages in and out, in every role.
 */
import type { Client, PublishPacket } from 'aedes';
import type { MqttClient } from 'mqtt';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EmbeddedBroker } from '../../broker/broker.js';
import { PRINCIPAL_KINDS } from '../../broker/acl.js';
import { METRIC_PREFIX } from './metrics-registry.js';

/**
 * Registers the broker collectors. Messages out are counted in aedes' `authorizeForward` hook, which it
 * calls once per delivery to one client (retained messages on SUBSCRIBE included); the hook in place is
 * kept and still decides.
 */
export function registerBrokerMetrics(registry: Registry, broker: EmbeddedBroker): void {
  const aedes = broker.aedes;
  const counted = directionCounter(
    registry,
    `${METRIC_PREFIX}mqtt_messages_total`,
    'PUBLISH messages through this broker instance: in = from its clients, out = delivered to its clients',
  );
  aedes.on('publish', (_packet: PublishPacket, client: Client | null) => {
    if (client) counted.in++;
  });
  const forward = aedes.authorizeForward.bind(aedes);
  aedes.authorizeForward = (client, packet) => {
    const allowed = forward(client, packet);
    if (allowed) counted.out++;
    return allowed;
  };

  new Gauge({
    name: `${METRIC_PREFIX}mqtt_connections`,
    help: 'Clients connected to this broker instance, by kind (site, service, browser)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const counts = broker.clientsByKind();
      for (const kind of PRINCIPAL_KINDS) this.set({ kind }, counts[kind] ?? 0);
    },
  });

  if (broker.retainedMessages() !== null) {
    new Gauge({
      name: `${METRIC_PREFIX}mqtt_retained_messages`,
      help:
        'Retained messages this broker instance holds in memory (a Serial per site, a record per device and per execution of the jobs within RETAINED_JOB_TTL_MS)',
      registers: [registry],
      collect() {
        this.set(broker.retainedMessages() ?? 0);
      },
    });
  }

  // The broker's own counters (broker-stats.ts) are cumulative: exported as counters by adding what
  // grew since the last scrape. The first counter's collect refreshes all three (collectors run in
  // registration order, before any of them is rendered).
  const grow = growthTracker();
  const refusedPublishes = new Counter({
    name: `${METRIC_PREFIX}mqtt_publishes_refused_total`,
    help: 'PUBLISHes acknowledged and dropped by the ACL or limits, by reason',
    labelNames: ['reason'],
    registers: [],
  });
  const refusedSubscriptions = new Counter({
    name: `${METRIC_PREFIX}mqtt_subscriptions_refused_total`,
    help: 'Subscriptions refused by the ACL',
    registers: [],
  });
  const connects = new Counter({
    name: `${METRIC_PREFIX}mqtt_connects_total`,
    help: 'CONNECTs handled by this broker instance: accepted by client kind, refused by reason',
    labelNames: ['outcome', 'reason'],
    registers: [],
    collect() {
      const s = broker.stats();
      for (const [kind, n] of Object.entries(s.connectsAccepted)) {
        grow(`a:${kind}`, n, (d) => this.inc({ outcome: 'accepted', reason: kind }, d));
      }
      for (const [reason, n] of Object.entries(s.connectsRefused)) {
        grow(`r:${reason}`, n, (d) => this.inc({ outcome: 'refused', reason }, d));
      }
      for (const [reason, n] of Object.entries(s.publishesRefused)) {
        grow(`p:${reason}`, n, (d) => refusedPublishes.inc({ reason }, d));
      }
      grow('s', s.subscriptionsRefused, (d) => refusedSubscriptions.inc(d));
    },
  });
  registry.registerMetric(connects);
  registry.registerMetric(refusedPublishes);
  registry.registerMetric(refusedSubscriptions);
}

/** Registers the service client's collectors: messages it sent and received, and whether it is connected. */
export function registerServiceClientMetrics(registry: Registry, mqtt: MqttClient): void {
  const counted = directionCounter(
    registry,
    `${METRIC_PREFIX}service_mqtt_messages_total`,
    "PUBLISH messages of this process's own MQTT client: out = sent, in = received",
  );
  mqtt.on('packetsend', (p) => {
    if (p.cmd === 'publish') counted.out++;
  });
  mqtt.on('packetreceive', (p) => {
    if (p.cmd === 'publish') counted.in++;
  });
  new Gauge({
    name: `${METRIC_PREFIX}service_mqtt_connected`,
    help: "1 while this process's MQTT client is connected to the broker",
    registers: [registry],
    collect() {
      this.set(mqtt.connected ? 1 : 0);
    },
  });
}

/**
 * A counter of messages by direction, counted in plain numbers and handed to prom-client at each
 * scrape: at tens of thousands of messages per second, prom-client's labelled `inc` (a label hash per
 * call) cost ~1 % of the broker process.
 */
function directionCounter(registry: Registry, name: string, help: string): { in: number; out: number } {
  const counted = { in: 0, out: 0 };
  const grow = growthTracker();
  const counter = new Counter({
    name,
    help,
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      for (const direction of ['in', 'out'] as const) {
        grow(direction, counted[direction], (d) => this.inc({ direction }, d));
      }
    },
  });
  counter.inc({ direction: 'in' }, 0);
  counter.inc({ direction: 'out' }, 0);
  return counted;
}

/**
 * Exports cumulative numbers kept elsewhere as prom-client counters: each call adds to the counter what
 * the value under `key` grew by since the previous call.
 */
function growthTracker(): (key: string, value: number, add: (delta: number) => void) => void {
  const seen = new Map<string, number>();
  return (key, value, add) => {
    const delta = value - (seen.get(key) ?? 0);
    if (delta > 0) add(delta);
    seen.set(key, value);
  };
}
