/**
 * One write per socket per event-loop iteration instead of one per MQTT packet.
 *
 * mqtt-packet corks a stream for one packet and uncorks it on the next tick, so a broker delivering
 * a hundred messages to the worker's connection in one iteration (aedes hands each delivery its own
 * `setImmediate`) made a hundred `write` syscalls; so did a worker publishing a hundred status
 * records answered by one Redis reply. Those small writes were the broker's largest CPU cost in the
 * benchmark. Here the first write of an iteration corks the socket and a `setImmediate` uncorks it:
 * everything written until then leaves as one `writev`. The delay is the rest of the current
 * iteration (microseconds when idle; under load, a write from an Immediate leaves when the next
 * iteration starts, see {@link releaseTimer}); TCP_NODELAY stays on, so nothing waits for Nagle. Used on the
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
  if (!scheduled) return;
  scheduled = false;
  const batch = held;
  // A release may write to another stream synchronously: that hold goes into a new batch.
  held = [];
  for (const cork of batch) cork.flush();
  armReleaseTimer();
}

/**
 * The release's second trigger, for what is held in the check phase. aedes writes every delivery
 * from a `setImmediate`, and an Immediate queued while Immediates run waits for the next iteration's
 * check phase: behind a whole poll phase, the part of a loaded iteration in which every socket's reads
 * are handled. A 0 ms timer runs when the next iteration starts, before that poll phase, if it is due
 * by then: one millisecond after it was armed. So it is armed at each release, for the holds of the
 * round after, which under load come a poll phase (milliseconds) later; an idle loop runs the
 * Immediate first, as before. Whichever comes first releases, the other finds nothing held. The timer
 * is not re-armed when it finds nothing held, so an idle process does not wake for it.
 */
const releaseTimer = setTimeout(onReleaseTimer, 0);
releaseTimer.unref();
let timerArmed = true;

function armReleaseTimer(): void {
  timerArmed = true;
  releaseTimer.refresh();
}

function onReleaseTimer(): void {
  timerArmed = false;
  releaseHeld();
}

function scheduleRelease(): void {
  scheduled = true;
  setImmediate(releaseHeld);
  if (!timerArmed) armReleaseTimer();
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
    if (!scheduled) scheduleRelease();
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
