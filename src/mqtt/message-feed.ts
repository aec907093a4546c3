/**
 * Where a component of the service gets the messages of some topic filters: from the service's MQTT
 * client, or, in the process that holds the embedded broker, from that broker itself
 * (`EmbeddedBroker.subscribe`), without a connection.
 *
 * The fleet monitor runs in the api,broker process and receives every site's inventory notifications
 * (15 % of the messages published in a bench: a rebooted product republishes its paths). Through a
 * client on loopback each was encoded, written, read back and parsed in the same event loop (no
 * PUBACK: the sites publish at QoS 0). Taken from the broker directly, the api,broker process's CPU
 * per execution fell ~4 % (10,000-site bench, divided by the simulator's CPU: 2.02 → 1.95).
 */
import type { MqttClient } from 'mqtt';
import { topicMatches } from '../protocol/topics.js';

/** Gets one message; must not throw. */
export type MessageHandler = (topic: string, payload: Buffer) => void;

export interface MessageFeed {
  /**
   * Subscribes to `filters`: `onMessage` gets what is published on them, and the retained messages
   * they match, as after an MQTT SUBSCRIBE. Resolves once subscribed, with the unsubscribe.
   */
  subscribe(filters: readonly string[], onMessage: MessageHandler): Promise<() => Promise<void>>;
}

/**
 * A feed over an MQTT client (QoS 1). The client may carry other subscriptions: only messages on
 * `filters` reach `onMessage`. After a reconnect mqtt.js subscribes again, and the retained messages
 * come again.
 */
export function clientFeed(mqtt: MqttClient): MessageFeed {
  return {
    async subscribe(filters, onMessage) {
      const listener = (topic: string, payload: Buffer) => {
        if (filters.some((filter) => topicMatches(filter, topic))) onMessage(topic, payload);
      };
      mqtt.on('message', listener);
      try {
        await mqtt.subscribeAsync([...filters], { qos: 1 });
      } catch (err) {
        mqtt.off('message', listener);
        throw err;
      }
      return async () => {
        mqtt.off('message', listener);
        if (mqtt.connected) await mqtt.unsubscribeAsync([...filters]).catch(() => undefined);
      };
    },
  };
}
