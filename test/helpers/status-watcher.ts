/**
 * A browser's view of a job, for tests: credentials from `POST /api/mqtt-credentials` of one api
 * instance, MQTT over WebSocket to that instance's broker, the newest execution record per device
 * (by `seq`) from `fleetflash/jobs/<jobId>/devices/+`, and the newest job summary from
 * `fleetflash/jobs/<jobId>/status`.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';

interface Credentials {
  url: string;
  username: string;
  password: string;
  clientIdPrefix?: string;
}

export class StatusWatcher {
  /** Newest record seen per device id. */
  readonly latest = new Map<string, ExecutionRecord>();
  /** Newest job summary seen (by `seq`), if any. */
  job: JobRecord | null = null;
  /** Execution records received. */
  messages = 0;

  private constructor(private readonly client: MqttClient) {}

  /** Connects as a browser of `base` (viewer token) and follows the device records of `jobId`. */
  static async connect(base: string, viewerToken: string, jobId: string): Promise<StatusWatcher> {
    const res = await fetch(`${base}/api/mqtt-credentials`, { method: 'POST', headers: { authorization: `Bearer ${viewerToken}` } });
    if (!res.ok) throw new Error(`mqtt-credentials → ${res.status} ${await res.text()}`);
    const creds = (await res.json()) as Credentials;
    const client = await mqtt.connectAsync(creds.url, {
      username: creds.username,
      password: creds.password,
      clientId: `${creds.clientIdPrefix ?? 'web-'}${randomBytes(8).toString('hex')}`,
      protocolVersion: 4,
      reconnectPeriod: 500,
    });
    const watcher = new StatusWatcher(client);
    client.on('message', (topic, payload) => {
      if (topic.endsWith('/status')) {
        const job = JSON.parse(payload.toString()) as JobRecord;
        if (!watcher.job || watcher.job.seq < job.seq) watcher.job = job;
        return;
      }
      watcher.messages++;
      const record = JSON.parse(payload.toString()) as ExecutionRecord;
      const prev = watcher.latest.get(record.deviceId);
      if (!prev || prev.seq < record.seq) watcher.latest.set(record.deviceId, record);
    });
    const granted = await client.subscribeAsync([`fleetflash/jobs/${jobId}/devices/+`, `fleetflash/jobs/${jobId}/status`], { qos: 1 });
    if (granted.some((g) => g.qos === 128)) throw new Error('subscription refused');
    return watcher;
  }

  get url(): string {
    return `${this.client.options.protocol}://${this.client.options.host}:${this.client.options.port}`;
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}
