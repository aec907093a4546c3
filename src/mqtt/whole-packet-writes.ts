/**
 * Every MQTT packet goes to its stream as one buffer, in one `write`.
 *
 * mqtt-packet's `writeToStream`, through which aedes writes every packet to its clients and mqtt.js
 * every packet to its broker, writes a packet field by field: a PUBLISH is five or six `write`s
 * (header, remaining length, topic length, topic, message id, payload), a PUBACK three; and it corks
 * the stream for each packet and queues a `process.nextTick` to uncork it. On a socket each of those
 * writes is a buffered request of its own, a string field is converted to a buffer on its way, and
 * the `writev` that finally sends them hands the kernel one piece per field. In the api,broker
 * process of the 10,000-site benchmark the per-packet `nextTick`s alone were 1.4 % of its busy time.
 *
 * {@link useWholePacketWrites} replaces the module's `writeToStream` by one that lets the original
 * encode the packet into a collector (which has no `cork`, so none is queued) and writes what it
 * collected as one buffer: the same bytes, one `write`, and that write's return value (backpressure)
 * as before. What the per-packet cork gave, packets written in one synchronous run leaving together
 * (a site republishing its paths, a burst of publishes), stays: a stream is corked at its first
 * packet of a tick and uncorked, with every other stream corked in that tick, by one shared
 * `nextTick`; a stream that holds its writes until the end of the event-loop iteration already
 * (write-coalescing.ts: the broker's client sockets and its guard around a WebSocket, the service's
 * client) is not corked at all.
 * A packet the original refuses (it destroys its stream with the reason) destroys the real stream
 * with the same error and writes nothing of it, as before. A packet for a stream already ended or
 * destroyed is dropped instead of written (the original's write would raise "write after end"
 * there). mqtt-packet's other exports, and
 * `generate`, are left as they are. Done once per process, for the one copy of mqtt-packet that
 * aedes and mqtt.js load (the project resolves one; a test checks both write through it).
 */
import type { Writable } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import { coalescesWrites } from '../net/write-coalescing.js';

type WriteToStream = ((packet: unknown, stream: Writable, opts?: unknown) => boolean) & {
  cacheNumbers: boolean;
};
interface MqttPacketModule {
  writeToStream: WriteToStream;
}

const kWhole = Symbol.for('fleetflash.wholePacketWrites');

/** What the original `writeToStream` writes for one packet, collected; reused packet after packet. */
class PacketCollector {
  private chunks: (Buffer | string)[] = [];
  private bytes = 0;
  error: Error | null = null;

  /** mqtt-packet writes Buffers, and strings as UTF-8. */
  write(chunk: Buffer | string): boolean {
    this.chunks.push(chunk);
    this.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    return true;
  }

  /** How mqtt-packet refuses a packet it cannot encode. */
  destroy(err?: Error): void {
    this.error ??= err ?? new Error('mqtt-packet refused the packet');
  }

  /** The packet's bytes (or the refusal), and the collector empty for the next packet. */
  take(): Buffer | Error {
    const { chunks, bytes, error } = this;
    this.chunks = [];
    this.bytes = 0;
    this.error = null;
    if (error) return error;
    if (chunks.length === 1 && typeof chunks[0] !== 'string') return chunks[0];
    const out = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (const c of chunks) {
      if (typeof c === 'string') at += out.write(c, at);
      else at += c.copy(out, at);
    }
    return out;
  }
}

/** Streams corked in this tick (see the module comment), all uncorked by one `nextTick`. */
let corked = new Set<Writable>();

function uncorkAll(): void {
  const streams = corked;
  // An uncork may write synchronously (a drain handler): a stream corked then waits for the next tick.
  corked = new Set();
  for (const stream of streams) stream.uncork();
}

/** Corks `stream` until the end of this tick unless it is corked so already or holds its writes itself. */
function holdForTick(stream: Writable): void {
  if (corked.has(stream) || typeof stream.cork !== 'function' || coalescesWrites(stream)) return;
  if (corked.size === 0) process.nextTick(uncorkAll);
  corked.add(stream);
  stream.cork();
}

/**
 * Makes mqtt-packet's `writeToStream` write each packet whole (see the module comment). Idempotent;
 * returns false, changing nothing, when mqtt-packet is not as expected (no `writeToStream`).
 */
export function useWholePacketWrites(): boolean {
  // The module object itself (CommonJS `module.exports`), which aedes and mqtt.js look the function up on.
  const mod = mqttPacket as unknown as MqttPacketModule;
  const original = mod.writeToStream;
  if (typeof original !== 'function') return false;
  if (kWhole in original) return true;
  const collector = new PacketCollector();
  const whole = function writeToStream(packet: unknown, stream: Writable, opts?: unknown): boolean {
    original(packet, collector as unknown as Writable, opts);
    const bytes = collector.take();
    if (bytes instanceof Error) {
      stream.destroy(bytes);
      return false;
    }
    // A stream already ended or destroyed takes nothing more: a write would only raise "write after
    // end" on a socket its client has stopped listening to (mqtt.js acknowledging a QoS 1 message that
    // arrived while `end()` was under way). The packet is dropped, as the connection is.
    if (stream.writableEnded || stream.destroyed) return false;
    holdForTick(stream);
    return stream.write(bytes);
  } as WriteToStream;
  // mqtt.js sets `writeToStream.cacheNumbers` (its `writeCache` option): it stays the original's setting.
  Object.defineProperty(whole, 'cacheNumbers', {
    get: () => original.cacheNumbers,
    set: (value: boolean) => {
      original.cacheNumbers = value;
    },
  });
  Object.defineProperty(whole, kWhole, { value: original });
  mod.writeToStream = whole;
  return true;
}
