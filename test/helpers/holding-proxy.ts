/**
 * A TCP proxy in front of an MQTT broker that keeps chosen PUBLISH packets of its clients from ever
 * reaching the broker: a link that has taken a packet out of the process and not delivered it when
 * the process dies. Everything else passes unchanged (client → broker packet by packet, parsed and
 * re-encoded with mqtt-packet for MQTT 3.1.1; broker → client byte for byte), so the client sees a
 * healthy connection whose held publishes are simply never acknowledged.
 */
import mqttPacket, { type IPublishPacket } from 'mqtt-packet';
import { startTcpForwarder } from './tcp-forwarder.js';

export interface HoldingProxy {
  /** Points the proxy at the broker on `port` (127.0.0.1) and returns the URL clients use instead. */
  forward(port: number): string;
  /** Cuts the link: closes every connection and refuses new ones until the next {@link forward}. */
  cut(): void;
  /** The publishes held back so far. */
  readonly held: IPublishPacket[];
  close(): Promise<void>;
}

export async function startHoldingProxy(hold: (packet: IPublishPacket) => boolean): Promise<HoldingProxy> {
  const held: IPublishPacket[] = [];
  const forwarder = await startTcpForwarder(null, (client, broker) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet) => {
      if (packet.cmd === 'publish' && hold(packet)) held.push(packet);
      else broker.write(mqttPacket.generate(packet));
    });
    parser.on('error', () => client.destroy());
    client.on('data', (chunk: Buffer) => parser.parse(chunk));
  });
  return {
    held,
    forward(brokerPort) {
      forwarder.target = brokerPort;
      return `mqtt://127.0.0.1:${forwarder.port}`;
    },
    cut() {
      forwarder.target = null;
      forwarder.drop();
    },
    close: () => forwarder.close(),
  };
}
