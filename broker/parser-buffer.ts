/**
 * A plain buffer list for each client's MQTT parser instead of a stream.
 *
 * mqtt-packet's parser (aedes' `client._parser`) holds the bytes of a packet still arriving in a
 * `bl` BufferListStream: a whole Duplex stream (read and write state, an event emitter) of which
 * the parser only uses the list methods (append, consume, length, readUInt8/16BE/32BE, slice,
 * toString); it never pipes, writes or listens to it. That stream held 1.1 KB of the ~14.7 KB of
 * heap each connected site cost (heap snapshots of the api,broker process at 200 and 3,000 sites).
 * The same package's BufferList has the same methods and no stream: about 0.6 KB less per site.
 * The parser makes a new stream only after a parse error, when aedes closes the connection anyway.
 */
import { BufferList } from 'bl';

/** The part of aedes' Client (lib/client.js) and mqtt-packet's Parser this reaches into. */
interface ClientParser {
  _parser?: { _list?: unknown };
}

/**
 * Gives a client aedes has just created (nothing parsed yet) a plain BufferList to parse from.
 * Returns false, changing nothing, when the parser is not as expected (another aedes or
 * mqtt-packet) or already holds bytes.
 */
export function useListParserBuffer(client: object): boolean {
  const parser = (client as ClientParser)._parser;
  const list = parser?._list;
  if (!parser || !BufferList.isBufferList(list) || list instanceof BufferList) return false;
  if ((list as { length: number }).length !== 0) return false;
  parser._list = new BufferList();
  return true;
}
