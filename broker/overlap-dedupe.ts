/**
 * aedes' de-duplication of deliveries, narrowed to what it is for: one message matching several of a
 * client's filters (`fleetflash/jobs/<id>/#` and `fleetflash/jobs/<id>/devices/+`) is sent once.
 *
 * aedes numbers every publish as it enters the broker (`brokerCounter`) and drops a delivery whose
 * number is not above the last one the client got from that broker (`dedupe` in lib/client.js). That
 * assumes messages are routed in the order they were numbered, and they are not: a QoS 1 publish waits
 * for the offline queue (and a retained one for the retained store) before it is routed, a QoS 0
 * publish does not wait for the queue. A QoS 1 message numbered just before a QoS 0 one (a device's
 * terminal status record and another device's progress, published in one task by the status publisher
 * of the process that holds the broker, status-sink.ts) reached a subscriber of both second and was
 * dropped as a "duplicate": a browser never saw that device finish (moscajs/aedes#994, open). In a
 * cluster the retained store and the queue are Redis round trips, so two clients' publishes overtake
 * each other too, and a site's retained Serial was lost that way (moscajs/aedes#955).
 *
 * Not re-numbering packets in the order they are routed (what the cluster's emitter did before): the
 * offline queue of a persistent session keeps a copy under the first number and aedes looks it up by
 * number when it sends the message. With a new number the in-memory store answers "no such packet"
 * (aedes then cuts the client off), and the Redis store leaves the copy queued, to be sent again at
 * the next reconnect.
 *
 * The copies of one message sent to one client's overlapping filters are delivered one right after the
 * other: mqemitter hands a message to every matching subscriber in one synchronous loop, and aedes'
 * check runs synchronously at the start of each delivery. So a delivery is a duplicate exactly when it
 * carries the same broker and number as the last one that client accepted from that broker. Before
 * each delivery, when its number is not that one, the client's watermark for the broker is set just
 * below it, so aedes' own check lets it through and records it; a second copy then meets its own
 * number and is dropped by aedes as before (with the offline-queue clean-up aedes does for it).
 * Retained messages sent on SUBSCRIBE carry no broker id and are never de-duplicated, as before.
 */
import type { Client } from 'aedes';

type Deliver = (packet: NumberedPacket, done: () => void) => void;

interface NumberedPacket {
  brokerId?: string | null;
  brokerCounter: number;
  qos: number;
}

/** The parts of an aedes client this module touches (not in aedes' typings). */
interface DeliveringClient {
  /** Last accepted number per broker id: aedes' `dedupe` state. */
  duplicates: Record<string, number>;
  deliver0: Deliver;
  deliverQoS: Deliver;
}

/**
 * The prototype of each client's watermarks, which replace aedes' `Object.create(null)`: that object
 * is in dictionary mode from the start, while one made from a prototype is a plain object whose key
 * (the broker id; a few in a cluster) is one hidden class shared by all clients. About 150 bytes less
 * per connected site, which pays for the two functions made per client below (`npx tsx
 * devices-sim/scale-check.ts --sites 5000 --broker fleetflash`, heap + external per connection after
 * GC: ~7,560 bytes before this module, ~7,780 with the functions alone, ~7,610 with both). Its own
 * prototype is null and it has no keys, so no broker id can meet an inherited one (`constructor`).
 */
const WATERMARKS_PROTOTYPE: object = Object.freeze(Object.create(null) as object);

/**
 * Makes `client` drop only the copies of a message it was just sent, never a message routed out of
 * number order. Call before the client subscribes to anything (aedes' `preConnect`): a subscription
 * takes the client's deliver functions as they are when it is made.
 */
export function dedupeOverlapsOnly(client: Client): void {
  const c = client as unknown as DeliveringClient;
  c.duplicates = Object.create(WATERMARKS_PROTOTYPE) as Record<string, number>;
  const deliver0 = c.deliver0;
  const deliverQoS = c.deliverQoS;
  c.deliver0 = (packet, done) => {
    reopen(c, packet);
    deliver0(packet, done);
  };
  c.deliverQoS = (packet, done) => {
    reopen(c, packet);
    deliverQoS(packet, done);
  };
}

/**
 * Lowers `c`'s watermark for the packet's broker just below its number, unless the client was just
 * sent this very packet. aedes' deliverQoS hands a QoS 0 message to client.deliver0, so this may run
 * twice for one delivery; the second time it finds the watermark below the number and changes nothing.
 */
function reopen(c: DeliveringClient, packet: NumberedPacket): void {
  const id = packet.brokerId;
  if (id && c.duplicates[id] !== packet.brokerCounter) c.duplicates[id] = packet.brokerCounter - 1;
}
