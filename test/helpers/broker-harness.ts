/**
 * A real embedded broker for tests: TCP on port 0, MQTT over WebSocket on an HTTP server on port 0,
 * an authenticator backed by a table of accounts, logs captured in memory, and teardown of every
 * client and listener it made.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Principal } from '../../broker/acl.js';
import { createBroker, type BrokerOptions, type EmbeddedBroker } from '../../broker/broker.js';
import { connectMqtt, waitConnected, type IClientOptions, type MqttClient } from '../../src/mqtt/connect.js';

/** One login: the principal is made at CONNECT time, so an expiry can be relative to it. */
export interface Account {
  password: string;
  principal: () => Principal;
}

/** A captured pino line. */
export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export const WARN = 40;

/** The service's login (`svc` / `svc-secret`), as the broker tests use it. */
export const SERVICE_ACCOUNT: Account = {
  password: 'svc-secret',
  principal: () => ({ kind: 'service', name: 'worker' }),
};

/** A browser's login (`token-1`, subject alice, a viewer) for `jobs`, valid for an hour from CONNECT. */
export function viewerAccount(jobs: '*' | string[]): Account {
  return {
    password: 'token-1',
    principal: () => ({
      kind: 'browser',
      subject: 'alice',
      role: 'viewer',
      jobs,
      expiresAt: Date.now() + 3_600_000,
    }),
  };
}

/** The broker plus what a test needs around it. */
export class BrokerHarness {
  readonly logs: LogLine[] = [];
  readonly #clients = new Set<MqttClient>();
  #broker!: EmbeddedBroker;
  #http!: http.Server;
  #tcpPort = 0;
  #httpPort = 0;

  private constructor(private readonly accounts: Record<string, Account>) {}

  static async start(
    accounts: Record<string, Account>,
    options: Partial<Omit<BrokerOptions, 'authenticate' | 'logger'>> = {},
  ): Promise<BrokerHarness> {
    const harness = new BrokerHarness(accounts);
    await harness.#start(options);
    return harness;
  }

  get broker(): EmbeddedBroker {
    return this.#broker;
  }

  /** The HTTP server the WebSocket endpoint is attached to (answers 404 to plain requests). */
  get httpServer(): http.Server {
    return this.#http;
  }

  url(transport: 'tcp' | 'ws', path = '/mqtt'): string {
    return transport === 'tcp'
      ? `mqtt://127.0.0.1:${this.#tcpPort}`
      : `ws://127.0.0.1:${this.#httpPort}${path}`;
  }

  /** A client that never reconnects by itself; closed by {@link close}. Does not wait for CONNACK. */
  client(transport: 'tcp' | 'ws', options: IClientOptions): MqttClient {
    const client = connectMqtt(this.url(transport), { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    this.#clients.add(client);
    return client;
  }

  /** Connects as `username` (password from the account table) and waits for CONNACK 0. */
  async connect(
    transport: 'tcp' | 'ws',
    username: string,
    clientId: string,
    options: IClientOptions = {},
  ): Promise<MqttClient> {
    const client = this.client(transport, {
      username,
      password: this.accounts[username]?.password,
      clientId,
      ...options,
    });
    await waitConnected(client, 5000);
    return client;
  }

  /** Resolves with the CONNACK return code of a refused connection; rejects if it is accepted. */
  refusal(client: MqttClient): Promise<number> {
    return new Promise((resolve, reject) => {
      client.once('connect', () => reject(new Error('connection was accepted')));
      client.once('error', (err: Error & { code?: number }) => resolve(Number(err.code)));
    });
  }

  /** Log lines at `level` or above whose message is `msg`. */
  logged(msg: string, level = WARN): LogLine[] {
    return this.logs.filter((line) => line.msg === msg && line.level >= level);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#clients].map((client) => client.endAsync(true)));
    await this.#broker.close();
    await new Promise<void>((resolve, reject) => this.#http.close((err) => (err ? reject(err) : resolve())));
  }

  async #start(options: Partial<BrokerOptions>): Promise<void> {
    const logger = pino(
      { level: 'debug' },
      { write: (line: string) => void this.logs.push(JSON.parse(line) as LogLine) },
    );
    this.#broker = await createBroker({
      ...options,
      logger,
      authenticate: async ({ username, password }) => {
        const account = username === undefined ? undefined : this.accounts[username];
        return account && password?.toString() === account.password ? account.principal() : null;
      },
    });
    this.#tcpPort = await this.#broker.listen(0, '127.0.0.1');
    this.#http = http.createServer((_req, res) => res.writeHead(404).end());
    this.#broker.attachWebSocket(this.#http);
    await new Promise<void>((resolve) => this.#http.listen(0, '127.0.0.1', resolve));
    this.#httpPort = (this.#http.address() as AddressInfo).port;
  }
}

/** A received message. */
export interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

/** Records every message a client (or an in-process subscriber, through {@link MessageLog.add}) receives. */
export class MessageLog {
  readonly messages: Received[] = [];
  readonly #waiters: Array<{ match: (m: Received) => boolean; resolve: (m: Received) => void }> = [];

  /** Records what `client` receives; without one, what is {@link add}ed. */
  constructor(client?: MqttClient) {
    client?.on('message', (topic, payload, packet) => this.add({ topic, payload, retain: packet.retain }));
  }

  add(message: Received): void {
    this.messages.push(message);
    for (const waiter of [...this.#waiters]) {
      if (!waiter.match(message)) continue;
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve(message);
    }
  }

  /** The first message on `topic` (already received or still to come). */
  next(topic: string, timeoutMs = 5000): Promise<Received> {
    const match = (m: Received) => m.topic === topic;
    const seen = this.messages.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no message on ${topic} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Topics of everything received, in order. */
  topics(): string[] {
    return this.messages.map((m) => m.topic);
  }

  /** Topics of messages delivered live, leaving out retained ones replayed by a subscription. */
  live(): string[] {
    return this.messages.filter((m) => !m.retain).map((m) => m.topic);
  }
}
