/**
 * A test MQTT client that records everything it receives and lets a test await a message instead
 * of sleeping: `await probe.next((m) => m.topic.endsWith('/heartbeat'))`.
 */
import { connectMqtt, waitConnected, type MqttClient } from '../../src/mqtt/connect.js';

export interface ProbeMessage {
  topic: string;
  /** Payload as text ('' for an empty payload). */
  text: string;
  retain: boolean;
  /** performance.now() at arrival. */
  at: number;
}

type Matcher = (m: ProbeMessage) => boolean;

export class MqttProbe {
  readonly messages: ProbeMessage[] = [];
  private waiters: { match: Matcher; from: number; resolve(m: ProbeMessage): void }[] = [];
  private rpcSeq = 0;
  private readonly rpcSubscribed = new Set<string>();

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const m: ProbeMessage = {
        topic,
        text: payload.toString('utf8'),
        retain: packet.retain,
        at: performance.now(),
      };
      this.messages.push(m);
      const index = this.messages.length - 1;
      this.waiters = this.waiters.filter((w) => {
        if (index < w.from || !w.match(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }

  static async connect(
    url: string,
    clientId = `probe-${Math.random().toString(36).slice(2, 10)}`,
  ): Promise<MqttProbe> {
    const client = connectMqtt(url, { clientId, reconnectPeriod: 0 });
    await waitConnected(client);
    return new MqttProbe(client);
  }

  /** Position in the message log, to wait only for messages after it. */
  mark(): number {
    return this.messages.length;
  }

  async subscribe(...filters: string[]): Promise<void> {
    await this.client.subscribeAsync(filters, { qos: 0 });
  }

  publish(topic: string, payload: string | object = ''): void {
    this.client.publish(topic, typeof payload === 'string' ? payload : JSON.stringify(payload));
  }

  /** The first message at or after `from` (default: any, including ones already received) that matches. */
  next(match: Matcher, timeoutMs = 5000, from = 0, what = 'a matching message'): Promise<ProbeMessage> {
    const found = this.messages.slice(from).find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        from,
        resolve: (m: ProbeMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Messages at or after `from` matching. */
  since(from: number, match: Matcher = () => true): ProbeMessage[] {
    return this.messages.slice(from).filter(match);
  }

  /**
   * Sends an RPC request and resolves with its first answer (`result` or `error`); progress events
   * for it stay in the log under `P/<id>/out/<rpcId>`.
   */
  async rpc(
    portalId: string,
    method: string,
    params: unknown,
    rpcId = `r${++this.rpcSeq}${Date.now().toString(36)}`,
  ): Promise<{ rpcId: string; body: Record<string, unknown> }> {
    const out = `P/${portalId}/out/${rpcId}`;
    if (!this.rpcSubscribed.has(portalId)) {
      await this.subscribe(`P/${portalId}/out/+`);
      this.rpcSubscribed.add(portalId);
    }
    const from = this.mark();
    this.publish(`P/${portalId}/in/${rpcId}`, { method, params });
    const m = await this.next(
      (x) => x.topic === out && !x.text.includes('"event"'),
      5000,
      from,
      `answer on ${out}`,
    );
    return { rpcId, body: JSON.parse(m.text) as Record<string, unknown> };
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}
