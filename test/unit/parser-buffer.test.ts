/**
 * The plain buffer list given to each client's MQTT parser: mqtt-packet's real parser, fed packets
 * split at every byte, must parse exactly what it parsed with its own stream; anything unexpected
 * is left alone.
 */
import { BufferList } from 'bl';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { useListParserBuffer } from '../../broker/parser-buffer.js';
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

describe('useListParserBuffer', () => {
  test('a fresh parser gets a plain BufferList and parses the same packets, however they are split', () => {
    for (const step of [1, 2, 3, 7, 64, stream.length]) {
      const expected = parseInPieces(mqttPacket.parser(), step);
      const c = client();
      expect(c._parser._list).not.toBeInstanceOf(BufferList);
      expect(useListParserBuffer(c)).toBe(true);
      expect(c._parser._list).toBeInstanceOf(BufferList);
      expect(parseInPieces(c._parser, step)).toEqual(expected);
      expect(expected).toHaveLength(packets.length);
    }
  });

  test('a parser holding part of a packet, or of another shape, is left as it is', () => {
    const midway = client();
    midway._parser.parse(stream.subarray(0, 5));
    const list = midway._parser._list;
    expect(useListParserBuffer(midway)).toBe(false);
    expect(midway._parser._list).toBe(list);

    expect(useListParserBuffer({})).toBe(false);
    expect(useListParserBuffer({ _parser: { _list: [] } })).toBe(false);
    const done = client();
    useListParserBuffer(done);
    expect(useListParserBuffer(done)).toBe(false);
  });
});
