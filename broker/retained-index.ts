/**
 * Retained messages indexed by topic level, so a SUBSCRIBE visits only the retained messages its
 * filter can match.
 *
 * aedes-persistence's in-memory store keeps retained messages in one Map and, on every SUBSCRIBE,
 * tests every one of them against every filter (asyncPersistence.js `retainedMessagesByPattern`).
 * Every site subscribes three filters when it connects and every supervised site adds one for the
 * worker, while the retained set grows with the fleet (a Serial per site, a record per device, per
 * job and per execution): connecting N sites cost O(N²) topic matches. With 10,000 sites aedes
 * accepted ~75 connections/s where Mosquitto took ~465/s. Here a filter walks a tree of topic levels:
 * `R/<id>/#` goes straight to `R` → `<id>` and visits only what lies below.
 *
 * Matching follows MQTT 3.1.1 §4.7: `+` is one level (an empty one too, [MQTT-4.7.1-3]), `#` the
 * parent level and everything below it ([MQTT-4.7.1-2]), and a filter starting with a wildcard
 * does not match topics starting with `$` ([MQTT-4.7.2-1]).
 */
import { isUtf8 } from 'node:buffer';
import { Readable } from 'node:stream';
import aedesPersistence from 'aedes-persistence';
import { unpooledCopy } from './parser-buffer.js';
import { childOf, children, node, nodeFor, pathTo, pruneEmpty, type TrieNode } from './topic-trie.js';

/** Values stored by topic name, found by topic filter. */
export class RetainedIndex<T> {
  private readonly root: TrieNode<T> = node('');
  private count = 0;

  get size(): number {
    return this.count;
  }

  set(topic: string, value: T): void {
    const n = nodeFor(this.root, topic.split('/'));
    if (n.value === undefined) this.count++;
    n.value = value;
  }

  get(topic: string): T | undefined {
    return pathTo(this.root, topic.split('/'))?.at(-1)?.value;
  }

  /** Removes the topic's value and prunes the branches left empty. */
  delete(topic: string): boolean {
    const levels = topic.split('/');
    const path = pathTo(this.root, levels);
    if (!path) return false;
    const leaf = path[path.length - 1];
    if (leaf.value === undefined) return false;
    leaf.value = undefined;
    this.count--;
    pruneEmpty(path, levels);
    return true;
  }

  /** Every value whose topic `filter` matches, each once, in no particular order. */
  *match(filter: string): Generator<T> {
    yield* this.walk(this.root, filter.split('/'), 0);
  }

  private *walk(n: TrieNode<T>, levels: readonly string[], i: number): Generator<T> {
    if (i === levels.length) {
      if (n.value !== undefined) yield n.value;
      return;
    }
    const level = levels[i];
    if (level === '#') {
      // [MQTT-4.7.1-2] `sport/#` also matches `sport`.
      if (i > 0 && n.value !== undefined) yield n.value;
      yield* this.subtree(n, i === 0);
      return;
    }
    if (level === '+') {
      for (const child of children(n)) {
        if (i === 0 && child.level.startsWith('$')) continue; // [MQTT-4.7.2-1]
        yield* this.walk(child, levels, i + 1);
      }
      return;
    }
    const child = childOf(n, level);
    if (child) yield* this.walk(child, levels, i + 1);
  }

  /** Every value strictly below `n`. */
  private *subtree(n: TrieNode<T>, skipDollar: boolean): Generator<T> {
    for (const child of children(n)) {
      if (skipDollar && child.level.startsWith('$')) continue; // [MQTT-4.7.2-1]
      if (child.value !== undefined) yield child.value;
      yield* this.subtree(child, false);
    }
  }
}

/** What aedes needs of a retained packet here (handlers/subscribe.js `sendRetained` reads no more). */
export interface RetainedPacket {
  cmd: 'publish';
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1 | 2;
}

type Callback = (error: Error | null) => void;

/**
 * The retained-message calls of an aedes persistence. aedes 1.x calls `storeRetained` promise-style
 * (aedes.js `storeRetained`); the callback form is kept for anything older.
 */
interface RetainedStore {
  storeRetained(packet: RetainedPacket, cb?: Callback): Promise<void> | void;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

const indexes = new WeakMap<object, RetainedIndex<RetainedPacket>>();

/** Retained messages a persistence made by {@link withRetainedIndex} holds; null for any other persistence. */
export function retainedMessageCount(persistence: object): number | null {
  return indexes.get(persistence)?.size ?? null;
}

/**
 * Takes over retained messages from an in-memory aedes persistence (aedes-persistence): they are
 * stored in a {@link RetainedIndex} instead of the persistence's own Map, which then stays empty.
 * Everything else (subscriptions, QoS queues, wills) stays with `persistence`. Returns it.
 * Not for a shared persistence (aedes-persistence-redis): there the retained set lives in Redis.
 */
export function withRetainedIndex<P extends object>(persistence: P): P {
  const index = new RetainedIndex<RetainedPacket>();
  indexes.set(persistence, index);
  const store = persistence as unknown as RetainedStore;
  store.storeRetained = (packet: RetainedPacket, cb?: Callback) => {
    if (packet.payload.length === 0) index.delete(packet.topic);
    else index.set(packet.topic, retainedCopy(packet));
    if (cb) {
      process.nextTick(cb, null);
      return;
    }
    return Promise.resolve();
  };
  store.createRetainedStream = (pattern: string) => Readable.from(index.match(pattern));
  store.createRetainedStreamCombi = (patterns: string[]) => Readable.from(matchAll(index, patterns));
  return persistence;
}

/**
 * What is kept of a retained packet: the four fields sent again later, the payload in memory of its
 * own. The parser hands out the payload as a view into the socket read it arrived in, and a kept view
 * keeps that whole read alive: a site's 30-byte Serial, republished within its full republish, held
 * the ~2 KB read of the republish (23 MB at 10,000 sites). A `Buffer.from` copy is no better: small
 * copies are cut from Node's shared 8 KiB pool, whose slab then lives as long as any retained copy in
 * it while the transient buffers around it die (a heap snapshot at 10,000 sites: 30,722 retained
 * payloads, ~7 MB of them, held 3,458 slabs, 28 MB). Text, which every Venus and fleetflash payload
 * is, is kept as a string: valid UTF-8 decodes and encodes back to the same bytes when it is sent
 * again, and a one-byte string costs its length plus a 16-byte header. Anything else gets a buffer
 * of its own.
 */
export function retainedCopy(packet: RetainedPacket): RetainedPacket {
  return { cmd: 'publish', topic: packet.topic, payload: ownPayload(packet.payload), qos: packet.qos };
}

function ownPayload(payload: Buffer | string): Buffer | string {
  if (typeof payload === 'string') return payload;
  if (isUtf8(payload)) return payload.toString('utf8');
  return unpooledCopy(payload);
}

/** Values matching any of `patterns`, each once even when several filters match it. */
function* matchAll<T>(index: RetainedIndex<T>, patterns: readonly string[]): Generator<T> {
  if (patterns.length === 1) {
    yield* index.match(patterns[0]);
    return;
  }
  const seen = new Set<T>();
  for (const p of patterns) {
    for (const v of index.match(p)) {
      if (seen.has(v)) continue;
      seen.add(v);
      yield v;
    }
  }
}

/**
 * aedes' default persistence (aedes-persistence, in memory) with retained messages indexed: what
 * the embedded broker uses unless a shared persistence is passed in.
 */
export function indexedMemoryPersistence(): object {
  // CommonJS whose typings declare an ES default export: under NodeNext the default import is the
  // module itself, i.e. the factory (aedes imports it the same way).
  const create = aedesPersistence as unknown as () => object;
  return withRetainedIndex(create());
}
