/**
 * One write per socket per event-loop iteration instead of one per MQTT packet.
 *
 * MQTT packets are held back at most until the next tick (mqtt-packet corked a stream for each
 * packet; whole-packet-writes.ts holds a stream's packets of one tick together), so a broker
 * delivering a hundred messages to the worker's connection in one iteration (aedes hands each
 * delivery its own `setImmediate`) made a hundred `write` syscalls; so did a worker publishing a
 * hundred status records answered by one Redis reply. Those small writes were the broker's largest
 * CPU cost in the benchmark. Here the first write of an iteration corks the socket and a `setImmediate` uncorks it:
 * everything written until then leaves as one `writev`. The delay is the rest of the current
 * iteration (microseconds when idle); TCP_NODELAY stays on, so nothing waits for Nagle. Used on the
 * broker's client streams, the service's MQTT socket and the stores' Redis socket.
 */
import type { Writable } from 'node:stream';

/**
 * Corks held in this iteration, all released by one `setImmediate` (not one per stream: the broker
 * holds thousands of client streams, and an Immediate each was garbage and timer-list work).
 */
let held: IterationCork[] = [];
let scheduled = false;

function releaseHeld(): void {
  scheduled = false;
  const batch = held;
  // A release may write to another stream synchronously: that hold goes into a new batch.
  held = [];
  for (const cork of batch) cork.flush();
}

/** Holds a stream corked until the end of the current event-loop iteration. */
export class IterationCork {
  #held = false;

  constructor(private readonly stream: Writable) {}

  /** Call before each write: the first call of an iteration corks, a shared `setImmediate` releases. */
  hold(): void {
    if (this.#held) return;
    this.#held = true;
    this.stream.cork();
    held.push(this);
    if (!scheduled) {
      scheduled = true;
      setImmediate(releaseHeld);
    }
  }

  /**
   * Writes what is held now. Call before destroying the stream: `destroy()` discards buffered
   * writes, and a CONNACK refusal written just before the broker drops the connection must still
   * leave (the client would otherwise never learn why).
   */
  flush(): void {
    if (!this.#held) return;
    this.#held = false;
    this.stream.uncork();
  }
}

/** What {@link coalesceWrites} keeps on a stream: its cork and the methods it shadows. */
interface Coalescing {
  cork: IterationCork;
  write: Writable['write'];
  destroy: Writable['destroy'];
}

const kCoalescing = Symbol('coalescedWrites');
type CoalescedStream = Writable & { [kCoalescing]: Coalescing };

/**
 * Makes every `write` on `stream` go through an {@link IterationCork}, and `destroy` send what is
 * held first (the service's MQTT and Redis sockets, the broker's site sockets). The stream gets one
 * small object and two properties pointing at functions shared by every stream: the broker does
 * this for each of thousands of site sockets. A stream already coalescing is returned as it is.
 */
export function coalesceWrites<S extends Writable>(stream: S): S {
  const state = stream as unknown as { [kCoalescing]?: Coalescing };
  if (state[kCoalescing]) return stream;
  state[kCoalescing] = { cork: new IterationCork(stream), write: stream.write, destroy: stream.destroy };
  const writable: Writable = stream;
  writable.write = coalescedWrite as Writable['write'];
  writable.destroy = flushingDestroy as Writable['destroy'];
  return stream;
}

/** Streams that hold what is written to them until the end of the iteration by themselves (packet-size-guard.ts). */
const holdingItself = new WeakSet<object>();

/** Declares that `stream` holds its writes until the end of the iteration (through an {@link IterationCork} of its own). */
export function declareCoalescing(stream: object): void {
  holdingItself.add(stream);
}

/** Whether `stream`'s writes wait for the end of the iteration: {@link coalesceWrites} made it so, or it declared so. */
export function coalescesWrites(stream: object): boolean {
  return kCoalescing in stream || holdingItself.has(stream);
}

function coalescedWrite(this: CoalescedStream, ...args: Parameters<Writable['write']>): boolean {
  const c = this[kCoalescing];
  c.cork.hold();
  return (c.write as (...a: unknown[]) => boolean).apply(this, args);
}

function flushingDestroy(this: CoalescedStream, error?: Error): Writable {
  const c = this[kCoalescing];
  // What was written last (a CONNACK refusal just before the broker drops a client) still leaves.
  c.cork.flush();
  c.destroy.call(this, error);
  return this;
}
