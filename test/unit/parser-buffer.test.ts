/**
 * ParserBytes, given to each client's MQTT parser: it answers every read the parser makes as `bl`
 * does (random appends, consumes and reads against bl's BufferList); mqtt-packet's real parser, fed
 * packets split at every byte, parses exactly what it parsed with its own stream; anything
 * unexpected is left alone. forgetConnectPacket: the parser keeps no more of the CONNECT than the
 * protocol version, and parses the rest of the connection as before. ownWillPayload: a will kept
 * from a CONNECT holds no view into the read it was parsed from.
 */
import { BufferList } from 'bl';
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';
import {
  forgetConnectPacket,
  ownWillPayload,
  ParserBytes,
  useParserBytes,
} from '../../broker/parser-buffer.js';
import { siteConnect } from '../helpers/site-connect.js';

const packets: Packet[] = [
  siteConnect('c0619ab1d2e3', 'secret'),
  { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'R/c0619ab1d2e3/#', qos: 0 }] },
  {
    cmd: 'publish',
    topic: 'N/c0619ab1d2e3/platform/0/Firmware/Progress',
    payload: Buffer.from('{"value":42}'),
    qos: 1,
    messageId: 7,
    retain: false,
    dup: false,
  },
  {
    cmd: 'publish',
    topic: 'W/c0619ab1d2e3/platform/0/Firmware/Install',
    payload: Buffer.alloc(300, 0x61),
    qos: 0,
    retain: false,
    dup: false,
  },
  { cmd: 'pingreq' },
];
const stream = Buffer.concat(packets.map((p) => mqttPacket.generate(p)));

type Parser = ReturnType<typeof mqttPacket.parser>;

/** A client as aedes makes it, as far as the parser goes: mqtt-packet's parser and its buffer. */
function client(): { _parser: Parser & { _list: unknown } } {
  return { _parser: mqttPacket.parser() as Parser & { _list: unknown } };
}

/** What a parser emits for `stream` cut into pieces of `step` bytes. */
function parseInPieces(parser: Parser, step: number): unknown[] {
  const got: unknown[] = [];
  parser.on('packet', (p: Packet) => got.push({ ...p }));
  for (let i = 0; i < stream.length; i += step) parser.parse(stream.subarray(i, i + step));
  return got;
}

describe('useParserBytes', () => {
  test('a fresh parser gets ParserBytes and parses the same packets, however they are split', () => {
    for (const step of [1, 2, 3, 7, 64, stream.length]) {
      const expected = parseInPieces(mqttPacket.parser(), step);
      const c = client();
      expect(c._parser._list).not.toBeInstanceOf(ParserBytes);
      expect(useParserBytes(c)).toBe(true);
      expect(c._parser._list).toBeInstanceOf(ParserBytes);
      expect(parseInPieces(c._parser, step)).toEqual(expected);
      expect(expected).toHaveLength(packets.length);
    }
  });

  test('a parser holding part of a packet, or of another shape, is left as it is', () => {
    const midway = client();
    midway._parser.parse(stream.subarray(0, 5));
    const list = midway._parser._list;
    expect(useParserBytes(midway)).toBe(false);
    expect(midway._parser._list).toBe(list);

    expect(useParserBytes({})).toBe(false);
    expect(useParserBytes({ _parser: { _list: [] } })).toBe(false);
    const done = client();
    useParserBytes(done);
    expect(useParserBytes(done)).toBe(false);
  });
});

describe('forgetConnectPacket', () => {
  test('after the CONNECT the parser keeps only its protocol version (no password, no will) and parses the rest as before', () => {
    const connect = mqttPacket.generate(packets[0]);
    const rest = stream.subarray(connect.length);
    const expected = parseInPieces(mqttPacket.parser(), 1).slice(1);

    const c = client();
    useParserBytes(c);
    const got: unknown[] = [];
    let forgotten: boolean | null = null;
    c._parser.on('packet', (p: Packet) => {
      // Where aedes' preConnect runs: the CONNECT just parsed, the next packets not yet.
      if (p.cmd === 'connect') forgotten = forgetConnectPacket(c);
      else got.push({ ...p });
    });
    c._parser.parse(connect);
    expect(forgotten).toBe(true);
    const settings = (c._parser as unknown as { settings: Record<string, unknown> }).settings;
    expect(settings).toEqual({ protocolVersion: 4, bridgeMode: false });
    expect(JSON.stringify(settings)).not.toContain('secret');
    // Every connection of the same protocol version shares one settings object.
    const other = client();
    other._parser.on('packet', () => forgetConnectPacket(other));
    other._parser.parse(connect);
    expect((other._parser as unknown as { settings: unknown }).settings).toBe(settings);
    for (let i = 0; i < rest.length; i++) c._parser.parse(rest.subarray(i, i + 1));
    expect(got).toEqual(expected);
    expect(got).toHaveLength(packets.length - 1);
  });

  test('a parser that has parsed no CONNECT, or of another shape, is left as it is', () => {
    const fresh = client();
    const before = (fresh._parser as unknown as { settings: unknown }).settings;
    expect(forgetConnectPacket(fresh)).toBe(false);
    expect((fresh._parser as unknown as { settings: unknown }).settings).toBe(before);
    expect(forgetConnectPacket({})).toBe(false);
  });
});

describe('ownWillPayload', () => {
  /** The will of a CONNECT parsed from one read, as aedes' preConnect gets it. */
  function parsedWill(portalId: string, payload: Buffer): { will: { payload: Buffer }; read: Buffer } {
    const read = mqttPacket.generate({
      ...siteConnect(portalId, 'secret'),
      will: { topic: `N/${portalId}/system/0/Serial`, payload, qos: 1, retain: true },
    });
    let will: { payload: Buffer } | undefined;
    const parser = mqttPacket.parser();
    parser.on('packet', (p: Packet) => {
      if (p.cmd === 'connect') will = p.will as { payload: Buffer };
    });
    parser.parse(read);
    return { will: will!, read };
  }

  test('the will keeps its bytes and no longer points into the read it was parsed from', () => {
    const { will, read } = parsedWill('c0619ab1d2e3', Buffer.from('{"value":null}'));
    expect(will.payload.buffer).toBe(read.buffer); // what aedes would keep
    ownWillPayload(will);
    expect(will.payload.toString()).toBe('{"value":null}');
    expect(will.payload.buffer).not.toBe(read.buffer);
    expect(Buffer.isBuffer(will.payload)).toBe(true);
  });

  test('connections sending the same small will share one payload; a large one gets a copy of its own', () => {
    const a = parsedWill('c0619ab1d2e3', Buffer.from('{"value":null}')).will;
    const b = parsedWill('c0619ab1d2e4', Buffer.from('{"value":null}')).will;
    ownWillPayload(a);
    ownWillPayload(b);
    expect(b.payload).toBe(a.payload);

    const big = Buffer.alloc(200, 'x');
    const { will, read } = parsedWill('c0619ab1d2e5', big);
    ownWillPayload(will);
    expect(will.payload.equals(big)).toBe(true);
    expect(will.payload.buffer).not.toBe(read.buffer);
    expect(will.payload.buffer.byteLength).toBe(200);
  });

  test('a client inventing wills does not grow the shared set without bound: past it, each gets its own copy', () => {
    const wills = Array.from({ length: 300 }, (_, i) =>
      parsedWill('c0619ab1d2e3', Buffer.from(`invented-${i}`)),
    );
    for (const { will } of wills) ownWillPayload(will);
    for (const [i, { will, read }] of wills.entries()) {
      expect(will.payload.toString()).toBe(`invented-${i}`);
      expect(will.payload.buffer).not.toBe(read.buffer);
    }
    const again = parsedWill('c0619ab1d2e3', Buffer.from('invented-299')).will;
    ownWillPayload(again);
    // The last ones did not fit in the shared set: a copy, not the same buffer.
    expect(again.payload).not.toBe(wills[299].will.payload);
    expect(again.payload.equals(wills[299].will.payload)).toBe(true);
  });
});

/** One step against both lists: append a chunk, consume some bytes, or read at an offset. */
type Op =
  | { op: 'append'; bytes: number[] }
  | { op: 'consume'; n: number }
  | { op: 'read'; kind: 'u8' | 'u16' | 'u32' | 'slice' | 'string'; at: number; len: number };

const ops = fc.array(
  fc.oneof(
    fc.record({
      op: fc.constant('append' as const),
      bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 9 }),
    }),
    fc.record({ op: fc.constant('consume' as const), n: fc.integer({ min: 0, max: 12 }) }),
    fc.record({
      op: fc.constant('read' as const),
      kind: fc.constantFrom(
        'u8' as const,
        'u16' as const,
        'u32' as const,
        'slice' as const,
        'string' as const,
      ),
      at: fc.integer({ min: 0, max: 20 }),
      len: fc.integer({ min: 0, max: 20 }),
    }),
  ),
  { maxLength: 60 },
);

/** What a read answers, or that it throws (both lists refuse a number beyond the bytes held). */
function read(list: ParserBytes | InstanceType<typeof BufferList>, o: Extract<Op, { op: 'read' }>): unknown {
  try {
    switch (o.kind) {
      case 'u8':
        return list.readUInt8(o.at);
      case 'u16':
        return list.readUInt16BE(o.at);
      case 'u32':
        return list.readUInt32BE(o.at);
      case 'slice':
        return [...list.slice(o.at, o.at + o.len)];
      case 'string':
        return list.toString('latin1', o.at, o.at + o.len);
    }
  } catch {
    return 'throws';
  }
}

test('ParserBytes answers every append, consume and read as bl’s BufferList does', () => {
  fc.assert(
    fc.property(ops, (steps) => {
      const ours = new ParserBytes();
      const theirs = new BufferList();
      for (const s of steps) {
        if (s.op === 'append') {
          ours.append(Buffer.from(s.bytes));
          theirs.append(Buffer.from(s.bytes));
        } else if (s.op === 'consume') {
          ours.consume(s.n);
          theirs.consume(s.n);
        } else {
          expect(read(ours, s)).toEqual(read(theirs, s));
        }
        expect(ours.length).toBe(theirs.length);
      }
    }),
    { numRuns: 2000 },
  );
});

test('a payload inside one socket read is a view of it; one that straddles two reads is copied whole', () => {
  const a = Buffer.from('abcdef');
  const b = Buffer.from('ghij');
  const list = new ParserBytes().append(a).append(b);
  list.consume(2);
  const view = list.slice(0, 3);
  expect(view.toString()).toBe('cde');
  expect(view.buffer).toBe(a.buffer);
  expect(view.byteOffset).toBe(a.byteOffset + 2);
  const across = list.slice(2, 7);
  expect(across.toString()).toBe('efghi');
  // A copy: the reads it came from may be overwritten (here, zeroed) without changing it.
  a.fill(0);
  b.fill(0);
  expect(across.toString()).toBe('efghi');
  expect(view[0]).toBe(0);
  b.write('ghij');
  list.consume(4);
  expect(list.length).toBe(4);
  expect(list.toString('utf8')).toBe('ghij');
});
