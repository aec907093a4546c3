/**
 * A TCP proxy in front of an MQTT broker that keeps chosen PUBLISH packets of its clients from ever
 * reaching the broker: a link that has taken a packet out of the process and not delivered it when
 * the process dies. Everything else passes unchanged (client → broker packet by packet, parsed and
 * re-encoded with mqtt-packet for MQTT 3.1.1; broker → client byte for byte), so the client sees a
 * healthy connection whose held publishes are simply never acknowledged.
 */
import net from 'node:net';
import mqttPacket, { type IPublishPacket } from 'mqtt-packet';

export interface HoldingProxy {
  /** Points the proxy at the broker on `port` (127.0.0.1) and returns the URL clients use instead. */
  forward(port: number): string;
  /** The publishes held back so far. */
  readonly held: IPublishPacket[];
  close(): Promise<void>;
}

export async function startHoldingProxy(hold: (packet: IPublishPacket) => boolean): Promise<HoldingProxy> {
  let target: number | null = null;
  const held: IPublishPacket[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (target === null) return client.destroy();
    const broker = net.connect({ host: '127.0.0.1', port: target });
    for (const s of [client, broker]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        broker.destroy();
      });
      s.on('error', () => undefined);
    }
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet) => {
      if (packet.cmd === 'publish' && hold(packet)) held.push(packet);
      else broker.write(mqttPacket.generate(packet));
    });
    parser.on('error', () => client.destroy());
    client.on('data', (chunk: Buffer) => parser.parse(chunk));
    broker.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    held,
    forward(brokerPort) {
      target = brokerPort;
      return `mqtt://127.0.0.1:${port}`;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
