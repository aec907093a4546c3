/**
 * Aedes that can acknowledge a PUBLISH and still not route it.
 *
 * [MQTT-3.3.5-2]: a server that does not authorize a PUBLISH "MUST either make a positive acknowledgement,
 * according to the normal QoS rules, or close the Network Connection". aedes only does the second: an
 * error from `authorizePublish` closes the connection (moscajs/aedes#210). For a GX that would turn one
 * stray message into a reconnect loop and a gap in its notifications — in the middle of a firmware update,
 * perhaps — so fleetflash does the first, as Mosquitto does: acknowledge, drop, log.
 *
 * How: `authorizePublish` marks the packet with {@link GuardedAedes.dropPublish} and lets it through; aedes
 * then acknowledges it by its QoS (PUBACK, or PUBREC…PUBCOMP) and hands the same packet object to
 * `broker.publish()` (lib/handlers/publish.js `enqueuePublish`; lib/client.js `close()` for the will),
 * where this class stops it: it is never stored as retained, queued offline, or delivered. The broker's
 * integration tests fail if a future aedes stops passing the same object.
 */
import { Aedes, type AedesOptions, type Client, type PublishPacket } from 'aedes';

type PublishDone = (error?: Error) => void;

/** `Aedes.prototype.publish` as aedes calls it internally; the typings only declare `(packet, done)`. */
type InternalPublish = (
  this: Aedes,
  packet: PublishPacket,
  client: Client | null | undefined | PublishDone,
  done?: PublishDone,
) => void;

/** The function aedes delivers a subscription's packets through (`client.subscriptions[filter].func`). */
export type DeliverFunc = Parameters<Aedes['unsubscribe']>[1];

/**
 * An Aedes broker whose `publish` skips packets marked with {@link dropPublish}, and that can tell
 * when an unsubscription in flight has completed ({@link afterUnsubscribe}).
 */
export class GuardedAedes extends Aedes {
  readonly #dropped = new WeakSet<PublishPacket>();
  /** Deliver functions being unsubscribed → what waits for that to complete. */
  readonly #unsubscribing = new Map<DeliverFunc, (() => void)[]>();

  /** Creates and starts the broker (persistence set up): the 1.x `Aedes.createBroker` for this class. */
  static async start(options: AedesOptions): Promise<GuardedAedes> {
    const broker = new GuardedAedes(options);
    await broker.listen();
    return broker;
  }

  /** Marks a packet on its way through `authorizePublish`: acknowledged as usual, routed nowhere. */
  dropPublish(packet: PublishPacket): void {
    this.#dropped.add(packet);
  }

  /**
   * Calls `then` once the unsubscription of `func` that is in flight has completed (aedes has then
   * removed it from the client's subscriptions too), or at once when none is.
   *
   * Why: aedes handles the packets of one read concurrently, and an UNSUBSCRIBE removes the
   * subscription asynchronously. A SUBSCRIBE of the same filter right behind it found the old
   * subscription still there, was acknowledged as a no-op, and then lost it to the UNSUBSCRIBE: the
   * client believed it was subscribed and received nothing (moscajs/aedes#469). The broker's
   * `authorizeSubscribe` waits here, so the filter is subscribed afresh after the removal.
   */
  afterUnsubscribe(func: DeliverFunc, then: () => void): void {
    const waiting = this.#unsubscribing.get(func);
    if (waiting) waiting.push(then);
    else then();
  }

  override unsubscribe(topic: string, func: DeliverFunc, done?: () => void): void {
    if (this.#unsubscribing.has(func)) {
      super.unsubscribe(topic, func, done as () => void);
      return;
    }
    const waiting: (() => void)[] = [];
    this.#unsubscribing.set(func, waiting);
    super.unsubscribe(topic, func, ((err?: Error) => {
      this.#unsubscribing.delete(func);
      (done as ((err?: Error) => void) | undefined)?.(err);
      for (const then of waiting) then();
    }) as () => void);
  }

  override publish(
    packet: PublishPacket,
    clientOrDone?: Client | null | PublishDone,
    done?: PublishDone,
  ): void {
    if (this.#dropped.has(packet)) {
      const callback = typeof clientOrDone === 'function' ? clientOrDone : done;
      // Asynchronous like a real publish, so aedes' packet loop does not re-enter itself.
      if (callback) process.nextTick(callback);
      return;
    }
    (super.publish as unknown as InternalPublish).call(this, packet, clientOrDone, done);
  }
}
