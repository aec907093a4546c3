/**
 * What each client's MQTT parser keeps: the bytes it reads packets from, a small list made for how
 * the parser reads ({@link useParserBytes}), no more of the CONNECT packet than it needs
 * ({@link forgetConnectPacket}), and no view into a socket read in the will kept from it
 * ({@link ownWillPayload}).
 *
 * mqtt-packet's parser (aedes' `client._parser`) keeps the bytes of packets still arriving in a
 * `bl` BufferListStream, of which it uses only the list methods (append, consume, length,
 * readUInt8/16BE/32BE, slice, toString); it never pipes, writes or listens to it. That stream was a
 * whole Duplex (1.1 KB of the ~14.7 KB of heap a connected site cost: heap snapshots at 200 and 3,000
 * sites), and `bl` answers every read through a slice: each `readUInt8` of a header or length byte
 * made a Buffer view and a two-number array. In the 10,000-site bench those were 16 % of everything
 * the api,broker process allocated (sampling allocation profile of the throughput phase). ParserBytes
 * reads a byte, a number or a string straight from the buffer that holds it (almost always the first:
 * a socket read holds whole packets), consumes by moving an offset, and copies only a payload that
 * straddles two reads. The parser makes a `bl` stream again only after a parse error, when aedes
 * closes the connection anyway.
 */
import { BufferList } from 'bl';

/** The list interface mqtt-packet's parser uses, over the buffers appended and not yet consumed. */
export class ParserBytes {
  /**
   * The oldest buffer not consumed, and those after it. Nearly always there is one at most (a read
   * holds whole packets and is parsed before the next arrives), so the others get an array only while
   * a packet straddles reads: an array kept for every connection held ~180 bytes of heap per site.
   */
  private first: Buffer | null = null;
  private rest: Buffer[] | null = null;
  /** How much of `first` is consumed already. */
  private head = 0;
  /** Bytes appended and not consumed. */
  length = 0;

  append(buf: Buffer): this {
    if (buf.length > 0) {
      if (this.first === null) this.first = buf;
      else (this.rest ??= []).push(buf);
      this.length += buf.length;
    }
    return this;
  }

  consume(bytes: number): this {
    let left = Math.min(Math.trunc(bytes), this.length);
    if (!(left > 0)) return this;
    this.length -= left;
    while (left > 0) {
      const inFirst = this.first!.length - this.head;
      if (left < inFirst) {
        this.head += left;
        return this;
      }
      left -= inFirst;
      this.first = this.rest?.shift() ?? null;
      if (this.rest?.length === 0) this.rest = null;
      this.head = 0;
    }
    return this;
  }

  /** Every buffer held, oldest first. */
  private *buffers(): Generator<Buffer> {
    if (this.first === null) return;
    yield this.first;
    if (this.rest) yield* this.rest;
  }

  readUInt8(offset: number): number {
    const first = this.first;
    const at = this.head + offset;
    if (first !== null && offset >= 0 && at < first.length) return first[at];
    return this.byteAt(offset);
  }

  readUInt16BE(offset: number): number {
    const first = this.first;
    const at = this.head + offset;
    if (first !== null && offset >= 0 && at + 2 <= first.length) return first.readUInt16BE(at);
    return this.byteAt(offset) * 0x100 + this.byteAt(offset + 1);
  }

  readUInt32BE(offset: number): number {
    const first = this.first;
    const at = this.head + offset;
    if (first !== null && offset >= 0 && at + 4 <= first.length) return first.readUInt32BE(at);
    return this.readUInt16BE(offset) * 0x10000 + this.readUInt16BE(offset + 2);
  }

  /** The bytes from `start` to `end` (a view when they lie in one buffer, as `bl` gives). */
  slice(start = 0, end = this.length): Buffer {
    start = Math.max(0, start);
    end = Math.min(end, this.length);
    if (start >= end) return Buffer.alloc(0);
    const first = this.first;
    if (this.head + end <= first!.length) return first!.subarray(this.head + start, this.head + end);
    const out = Buffer.allocUnsafe(end - start);
    let written = 0;
    let pos = -this.head; // offset of the current buffer's first byte in the list
    for (const buf of this.buffers()) {
      const from = Math.max(start - pos, 0);
      const to = Math.min(end - pos, buf.length);
      if (from < to) written += buf.copy(out, written, from, to);
      pos += buf.length;
      if (pos >= end) break;
    }
    return out;
  }

  toString(encoding: BufferEncoding = 'utf8', start = 0, end = this.length): string {
    const first = this.first;
    if (first !== null && start >= 0 && start <= end && this.head + end <= first.length) {
      return first.toString(encoding, this.head + start, this.head + end);
    }
    return this.slice(start, end).toString(encoding);
  }

  private byteAt(offset: number): number {
    if (!(offset >= 0 && offset < this.length))
      throw new RangeError(`offset ${offset} is outside the ${this.length} bytes held`);
    let at = this.head + offset;
    for (const buf of this.buffers()) {
      if (at < buf.length) return buf[at];
      at -= buf.length;
    }
    throw new RangeError(`offset ${offset} is outside the bytes held`);
  }
}

/** The part of aedes' Client (lib/client.js) and mqtt-packet's Parser this reaches into. */
interface ClientParser {
  _parser?: { _list?: unknown; settings?: ParserSettings };
}

/** What mqtt-packet's parser reads from its `settings` once a connection's CONNECT is parsed (parser.js). */
interface ParserSettings {
  protocolVersion?: number;
  bridgeMode?: boolean;
}

/**
 * Gives a client aedes has just created (nothing parsed yet) a ParserBytes to parse from. Returns
 * false, changing nothing, when the parser is not as expected (another aedes or mqtt-packet: its list
 * is not `bl`'s stream) or already holds bytes.
 */
export function useParserBytes(client: object): boolean {
  const parser = (client as ClientParser)._parser;
  const list = parser?._list;
  if (!parser || !BufferList.isBufferList(list) || list instanceof BufferList) return false;
  if ((list as { length: number }).length !== 0) return false;
  parser._list = new ParserBytes();
  return true;
}

/**
 * Lets go of the CONNECT packet a client's parser keeps. mqtt-packet's parser stores the CONNECT it
 * parsed as its `settings` for the life of the connection (parser.js `_parseConnect`), and reads only
 * `protocolVersion` and `bridgeMode` from it afterwards: the rest (the password, the client id,
 * username and will, the packet object) stayed in memory as long as the site was connected, ~0.3 KB
 * of heap per connected site, and the site's secret with it. Call once the CONNECT has been parsed
 * (aedes' preConnect). Returns false, changing nothing, when the parser is not as expected.
 */
export function forgetConnectPacket(client: object): boolean {
  const parser = (client as ClientParser)._parser;
  const settings = parser?.settings;
  if (!parser || !settings || typeof settings.protocolVersion !== 'number') return false;
  parser.settings = sharedParserSettings(settings.protocolVersion, settings.bridgeMode === true);
  return true;
}

/** One frozen settings object per protocol version and bridge mode: the parser only reads it. */
const parserSettings = new Map<string, Readonly<ParserSettings>>();

function sharedParserSettings(protocolVersion: number, bridgeMode: boolean): Readonly<ParserSettings> {
  const key = `${protocolVersion}/${bridgeMode}`;
  let settings = parserSettings.get(key);
  if (!settings) parserSettings.set(key, (settings = Object.freeze({ protocolVersion, bridgeMode })));
  return settings;
}

/** Will payloads up to this size are shared between connections that send the same bytes. */
const SHARED_WILL_MAX_BYTES = 64;
/** Distinct shared will payloads at most: a client inventing wills gets a copy of its own instead. */
const SHARED_WILL_MAX_ENTRIES = 256;
/** Shared will payloads by their bytes (latin1: one character per byte, so equal keys are equal bytes). */
const sharedWillPayloads = new Map<string, Buffer>();

/**
 * A copy of `bytes` in memory of its own, neither a view into a read nor a slice of Node's shared
 * 8 KiB pool (whose slab a long-kept copy would keep alive with everything else cut from it): for
 * bytes kept as long as a connection or a retained message.
 */
export function unpooledCopy(bytes: Buffer): Buffer {
  const own = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(own);
  return own;
}

/**
 * Replaces a CONNECT's will payload, a view into the socket read the CONNECT arrived in, with bytes
 * that pin no read. aedes keeps the will (the client's `will`, and the in-memory persistence's
 * table of wills, the same object) for the connection's life, and its payload view kept that whole
 * read alive: the CONNECT with the site's password, plus the ArrayBuffer's own bookkeeping. Every
 * site sends the same small will (`{"value":null}` on its Serial), so a small payload is shared by
 * all the connections that send it; nothing in aedes or the service writes into a payload. Call in
 * aedes' preConnect, before aedes stores the will.
 */
export function ownWillPayload(will: { payload: Buffer | string }): void {
  const payload = will.payload;
  if (!Buffer.isBuffer(payload)) return;
  if (payload.length <= SHARED_WILL_MAX_BYTES) {
    const key = payload.toString('latin1');
    let shared = sharedWillPayloads.get(key);
    if (!shared && sharedWillPayloads.size < SHARED_WILL_MAX_ENTRIES) {
      shared = unpooledCopy(payload);
      sharedWillPayloads.set(key, shared);
    }
    if (shared) {
      will.payload = shared;
      return;
    }
  }
  will.payload = unpooledCopy(payload);
}
