/**
 * The broker's network side: TCP and TLS listeners for devices and workers, MQTT over WebSocket on an
 * existing HTTP(S) server for browsers. Every accepted connection is tracked until it closes, so
 * `close()` can end those aedes does not know about yet (accepted, CONNECT not received, or a TLS
 * handshake still running) and leave no open handles.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createWebSocketStream, WebSocketServer, type WebSocket } from 'ws';
import { LISTEN_BACKLOG } from '../src/net/listen-backlog.js';

/**
 * Largest WebSocket message accepted from a client. Browsers only send CONNECT, SUBSCRIBE and PINGREQ;
 * without a cap ws buffers up to 100 MiB per message before MQTT parsing even starts.
 */
export const WS_MAX_MESSAGE_BYTES = 256 * 1024;

/**
 * `ws` as the byte stream aedes reads and writes, where packets written while a WebSocket message is
 * on its way leave together as the next message. ws' stream sends one message per write and writes
 * the next only once the previous one is on the socket: aedes' packets to a browser were a message
 * and a socket write each, even when the packet-size guard's cork (packet-size-guard.ts) released a
 * whole event-loop iteration's packets at once (2.6 % of the api,broker process's profile samples in
 * the 10,000-site bench were those writes). Browsers cannot tell: MQTT over WebSocket lets a message
 * hold several packets and requires receivers to parse across message boundaries ([MQTT-6.0.0-2]).
 */
export function mqttWebSocketStream(ws: WebSocket): Duplex {
  const stream = createWebSocketStream(ws);
  // Node's Writable hands every buffered chunk to `_writev` when it has one (at an uncork, or after
  // the message in flight): one message. `_write`, ws' own, still sends a lone chunk.
  (stream as WritevStream)._writev = (chunks, callback) => {
    ws.send(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk)), callback);
  };
  return stream;
}

type WritevStream = Duplex & {
  _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void;
};

/** Hands an accepted connection to the MQTT broker. */
export type ConnectionHandler = (
  stream: Duplex,
  remoteAddress: string | undefined,
  req?: IncomingMessage,
) => void;

/** TCP and WebSocket listeners feeding one broker. */
export class BrokerTransports {
  readonly #onConnection: ConnectionHandler;
  readonly #onListenerError: (err: Error) => void;
  readonly #connections = new Set<net.Socket | WebSocket>();
  readonly #upgradeListeners: UpgradeAttachment[] = [];
  readonly #listeners: { kind: 'tcp' | 'tls'; server: net.Server; closed: Promise<void> }[] = [];
  #accepting = true;

  /**
   * @param onConnection receives every accepted connection
   * @param onListenerError receives errors of a listener after it started (e.g. EMFILE on accept)
   */
  constructor(onConnection: ConnectionHandler, onListenerError: (err: Error) => void) {
    this.#onConnection = onConnection;
    this.#onListenerError = onListenerError;
  }

  /** Listens for MQTT over TCP; resolves with the bound port (`port` 0 picks a free one). */
  listenTcp(port: number, host?: string): Promise<number> {
    return this.#listen('tcp', net.createServer(), 'connection', port, host);
  }

  /**
   * Listens for MQTT over TLS (the 8883 convention); resolves with the bound port. Connections reach
   * the broker once their handshake completed; a handshake that stalls ends after tls' own timeout.
   */
  listenTls(port: number, host: string | undefined, options: tls.TlsOptions): Promise<number> {
    return this.#listen('tls', tls.createServer(options), 'secureConnection', port, host);
  }

  #listen(
    kind: 'tcp' | 'tls',
    server: net.Server,
    acceptEvent: 'connection' | 'secureConnection',
    port: number,
    host: string | undefined,
  ): Promise<number> {
    if (!this.#accepting) return Promise.reject(new Error('the broker is closed'));
    if (this.#listeners.some((l) => l.kind === kind)) {
      return Promise.reject(new Error(`the broker already listens on ${kind}`));
    }
    // Every raw socket is tracked from accept on (for TLS: before its handshake), so close() ends it.
    server.on('connection', (raw: net.Socket) => {
      if (!this.#accepting) {
        raw.destroy();
        return;
      }
      // Without TCP_NODELAY every small MQTT packet can wait ~40 ms for Nagle plus delayed ACK.
      raw.setNoDelay(true);
      this.#track(raw);
    });
    server.on(acceptEvent, (socket: net.Socket) => this.#accept(socket));
    // A failed TLS handshake is the client's problem; without a listener it would be an unhandled error.
    if (kind === 'tls') server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
    const listener = { kind, server, closed: Promise.resolve() };
    this.#listeners.push(listener);
    return new Promise((resolve, reject) => {
      const onListenError = (err: Error) => {
        this.#listeners.splice(this.#listeners.indexOf(listener), 1);
        reject(err);
      };
      server.once('error', onListenError);
      server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', onListenError);
        server.on('error', this.#onListenerError);
        listener.closed = new Promise((closed) => server.once('close', () => closed()));
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  /**
   * Serves MQTT over WebSocket at `path` on an existing HTTP server. Only upgrades for that path are
   * handled; other paths are left to the server's other 'upgrade' listeners.
   */
  attachWebSocket(server: HttpServer | HttpsServer, path: string): void {
    if (!this.#accepting) throw new Error('the broker is closed');
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: WS_MAX_MESSAGE_BYTES,
      // [MQTT-6.0.0-4]: the server selects the "mqtt" subprotocol; "mqttv3.1" for MQTT 3.1 clients.
      handleProtocols: (protocols) =>
        protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false,
    });
    const listener: UpgradeListener = (req, socket, head) => {
      if (requestPath(req) !== path) return;
      if (!this.#accepting) {
        socket.destroy();
        return;
      }
      // ws sets TCP_NODELAY itself; set it here too so the guarantee does not rest on a dependency.
      if (socket instanceof net.Socket) socket.setNoDelay(true);
      const remoteAddress = req.socket.remoteAddress;
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (!this.#accepting) {
          ws.terminate();
          return;
        }
        this.#track(ws);
        this.#onConnection(mqttWebSocketStream(ws), remoteAddress, req);
      });
    };
    server.on('upgrade', listener);
    this.#upgradeListeners.push({ server, wss, listener });
  }

  /** Stops accepting: closes the TCP/TLS listeners and detaches from every HTTP server. Idempotent. */
  stopAccepting(): void {
    if (!this.#accepting) return;
    this.#accepting = false;
    for (const { server } of this.#listeners) server.close();
    for (const { server, wss, listener } of this.#upgradeListeners) {
      server.off('upgrade', listener);
      wss.close();
    }
    this.#upgradeListeners.length = 0;
  }

  /** Stops accepting, ends every connection still open and waits for the listeners to close. */
  async close(): Promise<void> {
    this.stopAccepting();
    for (const connection of this.#connections) {
      if (connection instanceof net.Socket) connection.destroy();
      else connection.terminate();
    }
    await Promise.all(this.#listeners.map((l) => l.closed));
  }

  /** A TCP socket, or a TLS socket whose handshake completed (its raw socket is already tracked). */
  #accept(socket: net.Socket): void {
    if (!this.#accepting) {
      socket.destroy();
      return;
    }
    this.#onConnection(socket, socket.remoteAddress);
  }

  #track(connection: net.Socket | WebSocket): void {
    this.#connections.add(connection);
    connection.once('close', () => this.#connections.delete(connection));
  }
}

type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** One `attachWebSocket`: what to detach on close. */
interface UpgradeAttachment {
  server: HttpServer | HttpsServer;
  wss: WebSocketServer;
  listener: UpgradeListener;
}

function requestPath(req: IncomingMessage): string | null {
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname;
  } catch {
    return null;
  }
}
