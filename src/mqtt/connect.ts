/**
 * Opens MQTT client connections for the service and the simulator.
 * TCP sockets get TCP_NODELAY: without it every hop waits ~40 ms for Nagle + delayed ACK.
 * WebSocket sockets already have it (ws sets it on every socket it opens).
 * Each packet goes to the socket in one write (whole-packet-writes.ts).
 */
import net from 'node:net';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import { coalesceWrites } from '../net/write-coalescing.js';
import { useWholePacketWrites } from './whole-packet-writes.js';

export type { MqttClient, IClientOptions };

export interface ConnectTuning {
  /**
   * One socket write per event-loop iteration (see write-coalescing.ts), for clients that publish in
   * bursts (the service). Plain TCP only; a site sending one message at a time gains nothing.
   */
  coalesceWrites?: boolean;
}

/** Connects to `mqtt://host:port` (or `tcp://`, `ws://`, `wss://`, `mqtts://`); does not wait for CONNACK. */
export function connectMqtt(url: string, options: IClientOptions = {}, tuning: ConnectTuning = {}): MqttClient {
  // One write per packet (see whole-packet-writes.ts).
  useWholePacketWrites();
  const parsed = new URL(url);
  if (parsed.protocol === 'mqtt:' || parsed.protocol === 'tcp:') {
    const host = parsed.hostname || '127.0.0.1';
    const port = Number(parsed.port || 1883);
    const opts: IClientOptions = {
      protocolVersion: 4,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...options,
      host,
      port,
      protocol: 'mqtt',
    };
    return quiet(
      new MqttClient(() => {
        const socket = net.createConnection({ host, port, noDelay: true });
        return tuning.coalesceWrites ? coalesceWrites(socket) : socket;
      }, opts),
    );
  }
  return quiet(mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 1000, ...options }));
}

const noop = (): void => undefined;

/**
 * mqtt.js traces every packet through `debug('mqttjs:client')` (several calls per publish, each
 * building its arguments), even when that namespace is off: 1.7 % of the simulator's CPU and 0.6 %
 * of a worker's in the 10,000-site bench. When it is off (no `DEBUG=mqttjs*` at start), the client
 * gets a no-op instead; a caller's own `log` option is kept.
 */
function quiet(client: MqttClient): MqttClient {
  if (!client.options.log && !(client.log as { enabled?: boolean }).enabled) client.log = noop;
  return client;
}

/**
 * Resolves once the client is connected. A broker that refuses the credentials fails at once;
 * one that is not reachable yet (restarting) is waited for until `timeoutMs`.
 */
export function waitConnected(client: MqttClient, timeoutMs = 10_000): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`MQTT connect timed out after ${timeoutMs} ms`)), timeoutMs);
    const onConnect = () => done();
    // CONNACK refusals carry a numeric code (MQTT 3.1.1 §3.2.2.3); socket errors do not and are retried.
    const onError = (err: Error & { code?: unknown }) => {
      if (typeof err.code === 'number' || client.options.reconnectPeriod === 0) done(err);
    };
    function done(err?: Error) {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      if (err) reject(err);
      else resolve();
    }
    client.on('connect', onConnect);
    client.on('error', onError);
  });
}
