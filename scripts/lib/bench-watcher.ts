/**
 * The benchmark's browser: follows a job the way the portal's job page does, subscribing to
 * `fleetflash/jobs/<jobId>/#`. On the embedded broker it connects over MQTT-over-WebSocket with
 * credentials from `POST /api/mqtt-credentials`, exactly like the portal. Mosquitto here has no
 * fleetflash ACL, so there it connects anonymously: over WebSocket to the listener named with
 * `--mosquitto-ws-port`, else over TCP (the machine's Mosquitto has no WebSocket listener).
 */
import { randomBytes } from 'node:crypto';
import { connectMqtt, waitConnected, type MqttClient } from '../../src/mqtt/connect.js';
import { jobTopicPrefix, parseFleetflashTopic } from '../../src/protocol/index.js';
import type { Cluster } from './bench-cluster.js';
import { monoUs } from './bench-sim.js';

/** One execution record as the browser received it: device, phase, progress, state, receive time (µs). */
export type ReceivedRecord = [deviceId: string, phase: string | null, progress: number, state: string, receivedUs: number];

export class JobWatcher {
  /** Messages received on watched job topics since the last {@link JobWatcher.takeCount}. */
  private count = 0;
  private recording = false;
  private records: ReceivedRecord[] = [];
  readonly transport: 'websocket' | 'tcp';

  private constructor(
    private readonly client: MqttClient,
    transport: 'websocket' | 'tcp',
  ) {
    this.transport = transport;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  /** `mosquittoWsPort`: Mosquitto's WebSocket listener for the `mosquitto` runs, or null for TCP. */
  static async connect(cluster: Cluster, mosquittoWsPort: number | null = null): Promise<JobWatcher> {
    if (cluster.mode === 'mosquitto') {
      const url = mosquittoWsPort === null ? cluster.mqttUrl : `ws://127.0.0.1:${mosquittoWsPort}/mqtt`;
      const client = connectMqtt(url, { clientId: `ffbench-web-${randomBytes(4).toString('hex')}`, reconnectPeriod: 0 });
      await waitConnected(client);
      return new JobWatcher(client, mosquittoWsPort === null ? 'tcp' : 'websocket');
    }
    const res = await fetch(`${cluster.httpUrl}/api/mqtt-credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.operatorToken}` },
    });
    if (!res.ok) throw new Error(`POST /api/mqtt-credentials: ${res.status} ${await res.text()}`);
    const creds = (await res.json()) as { url: string; username: string; password: string; clientIdPrefix: string };
    const client = connectMqtt(creds.url, {
      clientId: `${creds.clientIdPrefix}bench${randomBytes(3).toString('hex')}`,
      username: creds.username,
      password: creds.password,
      reconnectPeriod: 0,
    });
    await waitConnected(client);
    return new JobWatcher(client, 'websocket');
  }

  /** Subscribes to the job's topics; resolves once the broker granted it (retained records follow). */
  async watch(jobId: string): Promise<void> {
    // QoS 0, as the portal subscribes (web/src/live-connection.ts).
    const granted = await this.client.subscribeAsync(`${jobTopicPrefix(jobId)}/#`, { qos: 0 });
    if (granted.some((g) => g.qos === 128)) throw new Error(`subscription to job ${jobId} refused`);
  }

  async unwatch(jobId: string): Promise<void> {
    await this.client.unsubscribeAsync(`${jobTopicPrefix(jobId)}/#`);
  }

  /** Starts (clearing) or stops keeping every execution record received, with its receive time. */
  record(on: boolean): void {
    this.recording = on;
    if (on) this.records = [];
  }

  takeRecords(): ReceivedRecord[] {
    const r = this.records;
    this.records = [];
    return r;
  }

  /** Messages received since the last call. */
  takeCount(): number {
    const n = this.count;
    this.count = 0;
    return n;
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }

  private onMessage(topic: string, payload: Buffer): void {
    const receivedUs = monoUs();
    this.count++;
    if (!this.recording) return;
    const t = parseFleetflashTopic(topic);
    if (!t || t.kind !== 'job-device' || payload.length === 0) return;
    const r = JSON.parse(payload.toString('utf8')) as { deviceId: string; phase: string | null; progress: number; state: string };
    this.records.push([r.deviceId, r.phase, r.progress, r.state, receivedUs]);
  }
}
