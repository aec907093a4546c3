/**
 * The subscriber index of the broker's message emitter: who is subscribed to which topic filter,
 * found by the topic of each message. It replaces the qlobber trie inside mqemitter (the emitter
 * aedes routes every message through, `mq._matcher`) with the same answers in a smaller shape.
 *
 * qlobber makes a Map for every level of every filter (the values of a filter sit under one more Map
 * key), each Map with a hash table of its own: for a site's three filters (`R/<id>/#`, `W/<id>/#`,
 * `P/<id>/in/+`) it held ~1.1 KB more heap per connected site than this trie (8.8 → 7.7 KB per site,
 * `devices-sim/scale-check.ts --broker fleetflash`, 5,000 sites). Here the levels are a tree (topic-trie.ts: a node holds its only child in a field, a Map
 * only once there are several) and a filter's subscriber sits in its node's value, an array only
 * when there are several. `npm run bench:matcher` compares the two on a fleet's filters.
 *
 * The answers are qlobber's own (8.x, with the options mqemitter passes: `/`, `+`, `#`, empty levels
 * matched or not): the same values in the same order, duplicates included, and the same errors for
 * over-long topics; a property test holds it to qlobber. As in qlobber, `$` topics are nothing special
 * here: aedes wraps the subscriber of a filter starting with a wildcard so that it skips them
 * ([MQTT-4.7.2-1], handlers/subscribe.js).
 */
import { childOf, node, nodeFor, pathTo, pruneEmpty, type TrieNode } from './topic-trie.js';

/** Several values of one filter (one is kept as it is); a class of its own, so no value is mistaken for it. */
class Many<T> {
  constructor(readonly list: T[]) {}
}

type Slot<T> = T | Many<T>;

/** What qlobber throws for, with its defaults (mqemitter passes none of these options). */
const MAX_WORDS = 100;
const MAX_WILDCARD_SOMES = 3;

export interface SubscriptionTrieOptions {
  separator: string;
  wildcardOne: string;
  wildcardSome: string;
  /** Whether `+` matches an empty level (`a/+/c` matches `a//c`). */
  matchEmptyLevels: boolean;
}

/** Values added under topic filters, matched by topic: qlobber's `Qlobber` in add, remove and match. */
export class SubscriptionTrie<T> {
  private readonly root: TrieNode<Slot<T>> = node('');

  constructor(private readonly options: SubscriptionTrieOptions) {}

  /** Adds `value` under `filter`; adding it twice makes it match twice, as in qlobber. */
  add(filter: string, value: T): this {
    const words = this.split(filter);
    let wildcards = 0;
    for (const w of words) if (w === this.options.wildcardSome) wildcards++;
    if (wildcards > MAX_WILDCARD_SOMES) throw new Error('too many wildcard somes');
    const n = nodeFor(this.root, words);
    const slot = n.value;
    if (slot === undefined) n.value = value;
    else if (slot instanceof Many) slot.list.push(value);
    else n.value = new Many([slot, value]);
    return this;
  }

  /**
   * Removes the last-added `value` under `filter`, or every value under it when `value` is left
   * out, and prunes the levels left empty.
   */
  remove(filter: string, value?: T): this {
    const words = this.split(filter);
    const path = pathTo(this.root, words);
    if (!path) return this;
    const leaf = path[path.length - 1];
    const slot = leaf.value;
    if (slot === undefined) return this;
    if (value === undefined) leaf.value = undefined;
    else if (slot instanceof Many) {
      const i = slot.list.lastIndexOf(value);
      if (i >= 0) slot.list.splice(i, 1);
      if (slot.list.length === 1) leaf.value = slot.list[0];
    } else if (slot === value) leaf.value = undefined;
    pruneEmpty(path, words);
    return this;
  }

  /** The values of every filter matching `topic`, in qlobber's order. */
  match(topic: string): T[] {
    const { separator } = this.options;
    // Checked without splitting: a topic shorter than MAX_WORDS characters has at most that many levels.
    if (topic.length >= MAX_WORDS && countOf(topic, separator) + 1 > MAX_WORDS)
      throw new Error('too many words');
    const out: T[] = [];
    this.collect(out, topic, 0, this.root);
    return out;
  }

  private split(topic: string): string[] {
    const words = topic.split(this.options.separator);
    if (words.length > MAX_WORDS) throw new Error('too many words');
    return words;
  }

  /**
   * qlobber's `_match`, step for step: `#` first, then the level itself (or the end), then `+`.
   * Walks `topic` in place rather than split into words (every routed message is matched here): the
   * level starting at `at` ends at the next separator, and `at === topic.length + separator.length`
   * is past the last level. A level is cut out of the topic only to look it up among several
   * children; a node with one child (most of a fleet's: `P` → `<portal id>` → `in` → `+`) is compared
   * in place.
   */
  private collect(out: T[], topic: string, at: number, n: TrieNode<Slot<T>>): void {
    const { separator, wildcardOne, wildcardSome } = this.options;
    const end = topic.length + separator.length;
    const some = childOf(n, wildcardSome);
    if (some) {
      // A `#` with levels after it tries them from every later level; then it matches to the end.
      if (some.children !== null)
        for (let j = at; j < end; j = levelAfter(topic, separator, j)) this.collect(out, topic, j, some);
      this.collect(out, topic, end, some);
    }
    if (at === end) {
      const slot = n.value;
      if (slot instanceof Many) for (const v of slot.list) out.push(v);
      else if (slot !== undefined) out.push(slot);
      return;
    }
    const c = n.children;
    if (c === null) return;
    const next = levelAfter(topic, separator, at);
    const stop = next - separator.length;
    const oneMatches = stop > at || this.options.matchEmptyLevels;
    if (c instanceof Map) {
      const word = topic.slice(at, stop);
      if (word !== wildcardOne && word !== wildcardSome) {
        const child = c.get(word);
        if (child) this.collect(out, topic, next, child);
      }
      if (oneMatches) {
        const one = c.get(wildcardOne);
        if (one) this.collect(out, topic, next, one);
      }
      return;
    }
    // The only child: `+` (matches this level), `#` (taken above), or a level of its own, which the
    // topic's level matches when it is the same text (a topic level that is itself a wildcard
    // character cannot equal it).
    const level = c.level;
    if (level === wildcardOne) {
      if (oneMatches) this.collect(out, topic, next, c);
    } else if (level !== wildcardSome && level.length === stop - at && topic.startsWith(level, at)) {
      this.collect(out, topic, next, c);
    }
  }
}

/** Where the level after the one starting at `at` starts (`topic.length + separator.length` past the last). */
function levelAfter(topic: string, separator: string, at: number): number {
  const stop = topic.indexOf(separator, at);
  return (stop < 0 ? topic.length : stop) + separator.length;
}

/** How often `separator` occurs in `text`. */
function countOf(text: string, separator: string): number {
  let count = 0;
  for (let i = text.indexOf(separator); i >= 0; i = text.indexOf(separator, i + separator.length)) count++;
  return count;
}

/** The parts of qlobber's Qlobber this reads to replace it (lib/qlobber.js). */
interface QlobberLike {
  _separator: string;
  _wildcard_one: string;
  _wildcard_some: string;
  _match_empty_levels: boolean;
  _max_words: number;
  _max_wildcard_somes: number;
  _trie: Map<string, unknown>;
  _shortcuts?: unknown;
  _split_cache?: unknown;
}

/**
 * Gives an mqemitter (or an emitter built on it, like mqemitter-redis) a {@link SubscriptionTrie}
 * in place of its qlobber matcher. Call before anything subscribes. Returns false, changing
 * nothing, when the matcher is not the plain qlobber expected (other options, caches, or already
 * holding subscriptions).
 */
export function useSubscriptionTrie(emitter: object): boolean {
  const e = emitter as { _matcher?: unknown };
  const q = e._matcher as QlobberLike | undefined;
  if (!q || !(q._trie instanceof Map) || q._trie.size !== 0) return false;
  if (q._shortcuts || q._split_cache) return false;
  if (q._max_words !== MAX_WORDS || q._max_wildcard_somes !== MAX_WILDCARD_SOMES) return false;
  e._matcher = new SubscriptionTrie({
    separator: q._separator,
    wildcardOne: q._wildcard_one,
    wildcardSome: q._wildcard_some,
    matchEmptyLevels: !!q._match_empty_levels,
  });
  return true;
}
