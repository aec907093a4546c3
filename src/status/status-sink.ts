/**
 * Where status records are published: the service's MQTT client, or, for retained records in a
 * process that holds the embedded broker (in memory, not clustered), that broker itself.
 *
 * The api,broker process published its own records (the queued record of every execution at
 * launch, device presence from the fleet monitor; everything in a one-process deployment) through
 * an MQTT client on loopback to itself: encoded, written, read back, parsed, authorized and
 * acknowledged in one event loop. A 10,000-device launch queued 10,000 such publishes, and the first
 * executions started ~0.8 s later than without them (10,000-site bench). Published as the server,
 * each is stored and routed like a client's publish, without the round trip.
 *
 * Only retained records, and only with the in-memory store; log lines and records in a cluster keep
 * going through the client. That split was once needed for aedes' de-duplication, which dropped a
 * delivery routed out of number order; the broker now drops only true duplicates (overlap-dedupe.ts),
 * so the split stands only as the path measured so far.
 */
import type { Aedes, PublishPacket } from 'aedes';

export interface StatusSink {
  /**
   * False while the sink is known to be disconnected (mqtt.js' `connected`; the in-process broker has
   * none and is always connected). mqtt.js sends what it queued offline at QoS 0 only after replaying
   * the QoS 1 publishes it stored, so the status publisher sends live records at QoS 1 then: replayed
   * in the order they were published, never behind a terminal record.
   */
  readonly connected?: boolean;
  /** Publishes; `callback` runs once the broker has taken the message (QoS 1), or it was written (QoS 0), or failed. */
  publish(
    topic: string,
    payload: string,
    options: { qos: 0 | 1; retain: boolean },
    callback: (err?: Error) => void,
  ): unknown;
}

/**
 * Publishes retained records as the broker itself (`aedes.publish`): stored and routed to
 * subscribers as a client's publish would be; the ACL is not consulted (the service may publish
 * anything). Refuses anything not retained (see above).
 */
export function embeddedBrokerSink(aedes: Aedes): StatusSink {
  return {
    publish(topic, payload, { qos, retain }, callback) {
      if (!retain) throw new Error('embeddedBrokerSink publishes retained records only');
      const packet = {
        cmd: 'publish',
        topic,
        payload: Buffer.from(payload),
        qos,
        retain,
        dup: false,
      } as PublishPacket;
      aedes.publish(packet, (err?: Error | null) => callback(err ?? undefined));
    },
  };
}
