/**
 * The bytes each client's MQTT parser reads packets from: a small list made for how the parser reads.
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
  private bufs: Buffer[] = [];
  /** How much of `bufs[0]` is consumed already. */
  private head = 0;
  /** Bytes appended and not consumed. */
  length = 0;

  append(buf: Buffer): this {
    if (buf.length > 0) {
      this.bufs.push(buf);
      this.length += buf.length;
    }
    return this;
  }

  consume(bytes: number): this {
    let left = Math.min(Math.trunc(bytes), this.length);
    if (!(left > 0)) return this;
    this.length -= left;
    while (left > 0) {
      const inFirst = this.bufs[0].length - this.head;
      if (left < inFirst) {
        this.head += left;
        return this;
      }
      left -= inFirst;
      this.bufs.shift();
      this.head = 0;
    }
    return this;
  }

  readUInt8(offset: number): number {
    const first = this.bufs[0];
    const at = this.head + offset;
    if (first !== undefined && offset >= 0 && at < first.length) return first[at];
    return this.byteAt(offset);
  }

  readUInt16BE(offset: number): number {
    const first = this.bufs[0];
    const at = this.head + offset;
    if (first !== undefined && offset >= 0 && at + 2 <= first.length) return first.readUInt16BE(at);
    return this.byteAt(offset) * 0x100 + this.byteAt(offset + 1);
  }

  readUInt32BE(offset: number): number {
    const first = this.bufs[0];
    const at = this.head + offset;
    if (first !== undefined && offset >= 0 && at + 4 <= first.length) return first.readUInt32BE(at);
    return this.readUInt16BE(offset) * 0x10000 + this.readUInt16BE(offset + 2);
  }

  /** The bytes from `start` to `end` (a view when they lie in one buffer, as `bl` gives). */
  slice(start = 0, end = this.length): Buffer {
    start = Math.max(0, start);
    end = Math.min(end, this.length);
    if (start >= end) return Buffer.alloc(0);
    const first = this.bufs[0];
    if (this.head + end <= first.length) return first.subarray(this.head + start, this.head + end);
    const out = Buffer.allocUnsafe(end - start);
    let written = 0;
    let pos = -this.head; // offset of the current buffer's first byte in the list
    for (const buf of this.bufs) {
      const from = Math.max(start - pos, 0);
      const to = Math.min(end - pos, buf.length);
      if (from < to) written += buf.copy(out, written, from, to);
      pos += buf.length;
      if (pos >= end) break;
    }
    return out;
  }

  toString(encoding: BufferEncoding = 'utf8', start = 0, end = this.length): string {
    const first = this.bufs[0];
    if (first !== undefined && start >= 0 && start <= end && this.head + end <= first.length) {
      return first.toString(encoding, this.head + start, this.head + end);
    }
    return this.slice(start, end).toString(encoding);
  }

  private byteAt(offset: number): number {
    if (!(offset >= 0 && offset < this.length))
      throw new RangeError(`offset ${offset} is outside the ${this.length} bytes held`);
    let at = this.head + offset;
    for (const buf of this.bufs) {
      if (at < buf.length) return buf[at];
      at -= buf.length;
    }
    throw new RangeError(`offset ${offset} is outside the bytes held`);
  }
}

/** The part of aedes' Client (lib/client.js) and mqtt-packet's Parser this reaches into. */
interface ClientParser {
  _parser?: { _list?: unknown };
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
