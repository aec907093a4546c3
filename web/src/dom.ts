/**
 * A few DOM helpers so views build elements as data, never from HTML strings: every text that comes
 * from the API or the broker goes through `textContent`, so a device's custom name cannot inject markup.
 */

/** Attributes and properties {@link el} understands. */
export interface ElOptions {
  /** Space-separated class names. */
  class?: string;
  /** Plain attributes (`aria-*`, `data-*`, `role`, `for`, …); `false`/`null` leaves one out. */
  attrs?: Record<string, string | number | boolean | null | undefined>;
  /** Text content (set after children, so use one or the other). */
  text?: string;
  /** Event listeners by event name. */
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (ev: HTMLElementEventMap[K]) => void }>;
}

/** Anything {@link el} accepts as a child. */
export type Child = Node | string | null | undefined | false;

/** Creates an element with attributes, listeners and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: ElOptions = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (options.class) node.className = options.class;
  for (const [name, value] of Object.entries(options.attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const [name, listener] of Object.entries(options.on ?? {})) {
    node.addEventListener(name, listener as EventListener);
  }
  append(node, ...children);
  if (options.text !== undefined) node.textContent = options.text;
  return node;
}

/** Appends children, skipping the falsy ones so conditional parts read naturally. */
export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

/** Replaces every child of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

/** Sets text only when it changed: live updates touch many cells and most of them stay the same. */
export function setText(node: Node, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}

/** Sets or removes an attribute only when it changed. */
export function setAttr(node: Element, name: string, value: string | null): void {
  if (value === null) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== value) {
    node.setAttribute(name, value);
  }
}

let idCounter = 0;
/** A document-unique id for `label for=` and `aria-describedby`. */
export function uid(prefix: string): string {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A labelled form field: `<div class="field"><label for>…</label>control</div>`. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLDivElement {
  control.id ||= uid('f');
  const hintEl = hint
    ? el('small', { class: 'hint', attrs: { id: `${control.id}-hint` }, text: hint })
    : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return el(
    'div',
    { class: 'field' },
    el('label', { attrs: { for: control.id }, text: label }),
    control,
    hintEl,
  );
}

/**
 * Coalesces many calls into one per animation frame: a job with thousands of devices sends far more
 * updates than the screen can show, and repainting once per frame keeps the page responsive.
 */
export function frameBatcher(flush: () => void): { schedule(): void; cancel(): void } {
  let handle: number | null = null;
  return {
    schedule() {
      handle ??= requestAnimationFrame(() => {
        handle = null;
        flush();
      });
    },
    cancel() {
      if (handle !== null) cancelAnimationFrame(handle);
      handle = null;
    },
  };
}
