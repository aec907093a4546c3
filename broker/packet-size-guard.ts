/**
 * A cap on the size of MQTT packets a client may send, enforced before they are buffered.
 *
 * mqtt-packet (aedes' parser) keeps appending bytes until a whole packet has arrived, and the fixed
 * header may announce up to 268,435,455 bytes ([MQTT-2.2.3]: four bytes of remaining length). A client
 * could therefore make the broker hold 256 MiB per connection before any authorization hook runs;
 * aedes has no option for a maximum packet size (moscajs/aedes#831). This guard sits between the
 * network stream and aedes: it follows the packet framing byte by byte (no buffering of its own) and
 * closes the connection as soon as a fixed header announces a packet larger than the limit. MQTT
 * 3.1.1 has no way to tell the client why; MQTT 5 would send DISCONNECT 0x95 (Packet too large),
 * which needs a parsed CONNECT first: closing is what both allow ([MQTT-4.8.0-1] for 3.1.1's
 * protocol errors).
 *
 * Two forms: {@link guardSocket} meters a TCP or TLS socket in place, {@link PacketSizeGuard} wraps any
 * other stream (a WebSocket stream).
 */
import type net from 'node:net';
import { Duplex } from 'node:stream';
import { coalesceWrites, declareCoalescing, IterationCork } from '../src/net/write-coalescing.js';

/** Why the guard closed a connection. */
export type FrameViolation =
  | { kind: 'packet-too-large'; bytes: number; max: number }
  /** A remaining length longer than four bytes ([MQTT-2.2.3]): not MQTT. */
  | { kind: 'malformed' };

/** Told of a violation, with the connection (as aedes sees it) that is being closed for it. */
export type FrameViolationHandler = (violation: FrameViolation, connection: Duplex) => void;

/**
 * Follows MQTT framing over a byte stream: fixed header byte, remaining length (variable byte
 * integer, 1–4 bytes), then that many bytes. Pure and incremental: chunks may split anywhere.
 */
export class MqttFrameMeter {
  #state: 'header' | 'length' | 'body' = 'header';
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #remaining = 0;

  /** @param maxPacketBytes largest whole packet (fixed header included) allowed */
  constructor(readonly maxPacketBytes: number) {
    if (!Number.isInteger(maxPacketBytes) || maxPacketBytes < 2) {
      throw new RangeError(`maxPacketBytes must be an integer >= 2, got ${maxPacketBytes}`);
    }
  }

  /** Accounts for `chunk`; returns a violation as soon as one is seen, else null. */
  feed(chunk: Uint8Array): FrameViolation | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 'header') {
        i++;
        this.#state = 'length';
        this.#length = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
      } else if (this.#state === 'length') {
        const byte = chunk[i++];
        this.#length += (byte & 0x7f) * this.#multiplier;
        this.#multiplier *= 128;
        this.#lengthBytes++;
        if (byte & 0x80) {
          if (this.#lengthBytes === 4) return { kind: 'malformed' };
          continue;
        }
        const bytes = 1 + this.#lengthBytes + this.#length;
        if (bytes > this.maxPacketBytes) return { kind: 'packet-too-large', bytes, max: this.maxPacketBytes };
        this.#remaining = this.#length;
        this.#state = this.#remaining > 0 ? 'body' : 'header';
      } else {
        const n = Math.min(this.#remaining, chunk.length - i);
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = 'header';
      }
    }
    return null;
  }
}

/**
 * `inner` (a WebSocket stream, or a socket {@link guardSocket} could not take) as aedes should see
 * it: reads pass through the {@link MqttFrameMeter}, writes go straight to `inner` with its
 * backpressure, and destroying either side destroys both. On a violation `onViolation` is called
 * and the connection is destroyed before the offending bytes reach the parser.
 */
export class PacketSizeGuard extends Duplex {
  readonly #inner: Duplex;
  /** Everything written to this client in one event-loop iteration leaves as one write on `inner`. */
  readonly #cork: IterationCork;

  constructor(inner: Duplex, maxPacketBytes: number, onViolation: FrameViolationHandler) {
    // Like a net.Socket of a server with allowHalfOpen false: the end of the client's data ends ours.
    super({ allowHalfOpen: false });
    this.#inner = inner;
    this.#cork = new IterationCork(inner);
    declareCoalescing(this);
    const meter = new MqttFrameMeter(maxPacketBytes);
    inner.on('data', (chunk: Buffer) => {
      if (this.destroyed) return;
      const violation = meter.feed(chunk);
      if (violation) {
        onViolation(violation, this);
        this.destroy();
        return;
      }
      if (!this.push(chunk)) inner.pause();
    });
    inner.once('end', () => this.push(null));
    inner.on('error', (err: Error) => this.destroy(err));
    inner.once('close', () => {
      if (!this.destroyed) this.destroy();
    });
  }

  override _read(): void {
    this.#inner.resume();
  }

  /**
   * Into `inner`, held corked until the end of the iteration: mqtt-packet writes a packet field by
   * field (header, length, topic, payload), and what an iteration wrote leaves as one write on
   * `inner` (a socket's `writev`; on WebSocket one message, see mqttWebSocketStream in transports.ts),
   * not a syscall or a WebSocket frame per field.
   */
  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#cork.hold();
    if (this.#inner.write(chunk, encoding)) callback();
    else this.#inner.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#inner.end(() => callback());
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // What this client was sent last (a CONNACK refusal before the broker drops it) still leaves.
    this.#cork.flush();
    this.#inner.destroy();
    callback(err);
  }
}

/** What {@link guardSocket} keeps on a socket: one object, read by a function shared by every socket. */
interface SocketGuard {
  meter: MqttFrameMeter;
  onViolation: FrameViolationHandler;
}

const kGuard = Symbol('packetSizeGuard');
type GuardedSocket = net.Socket & { [kGuard]: SocketGuard };

/**
 * The guard applied to a TCP or TLS socket itself, for aedes to read directly: the socket's `push`
 * (where net hands over each read, before it is buffered) meters the bytes first, and on a violation
 * calls `onViolation` and destroys the socket instead; its writes are coalesced per iteration and a
 * `destroy` sends what is held first ({@link coalesceWrites}, as {@link PacketSizeGuard} does for
 * its stream).
 *
 * Why not the {@link PacketSizeGuard} stream here: per connection it was a second stream with its
 * own read and write state, four listeners on the socket and their closures, 1.3 KB of heap per
 * connected site (heap snapshots at 3,000 sites), and every read went through both streams. Here a
 * socket gets three properties pointing at shared functions and two small objects.
 *
 * Returns false, changing nothing, when the socket has buffered data already (a TLS socket can have
 * decrypted bytes waiting when its handshake completes): the meter must see a connection's bytes
 * from the first one on, so such a socket takes {@link PacketSizeGuard}, which reads that buffer too.
 */
export function guardSocket(
  socket: net.Socket,
  maxPacketBytes: number,
  onViolation: FrameViolationHandler,
): boolean {
  if (socket.readableLength > 0) return false;
  const guarded = socket as GuardedSocket;
  guarded[kGuard] = { meter: new MqttFrameMeter(maxPacketBytes), onViolation };
  guarded.push = meteredPush;
  coalesceWrites(socket);
  return true;
}

function meteredPush(this: GuardedSocket, chunk: unknown, encoding?: BufferEncoding): boolean {
  if (chunk !== null && !this.destroyed) {
    const guard = this[kGuard];
    const violation = guard.meter.feed(chunk as Uint8Array);
    if (violation) {
      guard.onViolation(violation, this);
      this.destroy();
      return false;
    }
  }
  // The socket's class method, which the instance's own `push` shadows.
  return (Object.getPrototypeOf(this) as net.Socket).push.call(this, chunk, encoding);
}
