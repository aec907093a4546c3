/**
 * A tree of topic levels, the shape both of the broker's indexes use: retained messages by topic
 * name (retained-index.ts) and subscribers by topic filter (subscription-trie.ts). A node holds its
 * children in the smallest form that fits: none, the only one, or a Map by level once there are
 * several. With thousands of sites, most nodes below `<prefix>/<portal id>` have exactly one child.
 */
export interface TrieNode<T> {
  /** The topic level this node stands for: the key its parent finds it by. */
  readonly level: string;
  /**
   * The nodes one level down: none, the only one, or a Map by level once there are several. Most
   * nodes have one child (`N/<id>/system/0/Serial` is a chain of them for every site), and a
   * one-entry Map cost ~190 bytes where the node itself holds it for one field.
   */
  children: TrieNode<T> | Map<string, TrieNode<T>> | null;
  value: T | undefined;
}

export function node<T>(level: string): TrieNode<T> {
  return { level, children: null, value: undefined };
}

export function childOf<T>(n: TrieNode<T>, level: string): TrieNode<T> | undefined {
  const c = n.children;
  if (c === null) return undefined;
  if (c instanceof Map) return c.get(level);
  return c.level === level ? c : undefined;
}

/** The child for `level`, made when missing. */
export function childFor<T>(n: TrieNode<T>, level: string): TrieNode<T> {
  const c = n.children;
  if (c === null) return (n.children = node(level));
  if (c instanceof Map) {
    let child = c.get(level);
    if (!child) c.set(level, (child = node(level)));
    return child;
  }
  if (c.level === level) return c;
  const child = node<T>(level);
  n.children = new Map([
    [c.level, c],
    [level, child],
  ]);
  return child;
}

export function removeChild<T>(n: TrieNode<T>, level: string): void {
  const c = n.children;
  if (c instanceof Map) {
    c.delete(level);
    // Back to the one-child form, so deletes leave no one-entry Maps behind either.
    if (c.size === 1) n.children = c.values().next().value!;
  } else if (c?.level === level) {
    n.children = null;
  }
}

export function children<T>(n: TrieNode<T>): Iterable<TrieNode<T>> {
  const c = n.children;
  if (c === null) return [];
  return c instanceof Map ? c.values() : [c];
}

/** The node for `levels` below `root`, made (with the levels above it) when missing. */
export function nodeFor<T>(root: TrieNode<T>, levels: readonly string[]): TrieNode<T> {
  let n = root;
  for (const level of levels) n = childFor(n, level);
  return n;
}

/** The nodes from `root` down to the one for `levels`, root first; null when a level is missing. */
export function pathTo<T>(root: TrieNode<T>, levels: readonly string[]): TrieNode<T>[] | null {
  const path: TrieNode<T>[] = [root];
  for (const level of levels) {
    const next = childOf(path[path.length - 1], level);
    if (!next) return null;
    path.push(next);
  }
  return path;
}

/** Removes the nodes of `path` (from {@link pathTo}) left with no value and no children, deepest first. */
export function pruneEmpty<T>(path: readonly TrieNode<T>[], levels: readonly string[]): void {
  for (let i = levels.length; i > 0; i--) {
    const n = path[i];
    if (n.value !== undefined || n.children !== null) break;
    removeChild(path[i - 1], levels[i - 1]);
  }
}
