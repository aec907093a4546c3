/** Small building blocks shared by the views: state badges, progress bars, error boxes, tables. */
import { el, setAttr, setText } from './dom.js';
import { humanize } from './format.js';
import type { ApiError } from './api-client.js';

/** A coloured state label (`succeeded`, `in_progress`, `online`, …); the colour is never the only cue. */
export function stateBadge(state: string, text = humanize(state)): HTMLSpanElement {
  return el('span', { class: `badge state-${state}`, attrs: { 'data-state': state }, text });
}

/** Updates a badge made by {@link stateBadge} in place. */
export function setBadge(badge: HTMLElement, state: string, text = humanize(state)): void {
  badge.className = `badge state-${state}`;
  setAttr(badge, 'data-state', state);
  setText(badge, text);
}

/** A labelled progress bar with its percentage as text next to it. */
export interface ProgressBar {
  element: HTMLElement;
  set(value: number): void;
}

/** Creates a {@link ProgressBar}; `label` names it for screen readers (e.g. the device id). */
export function progressBar(label: string, value = 0): ProgressBar {
  const bar = el('progress', { attrs: { max: 100, 'aria-label': label } });
  const text = el('span', { class: 'pct', attrs: { 'aria-hidden': 'true' } });
  const element = el('span', { class: 'progress' }, bar, text);
  const set = (v: number) => {
    const clamped = Math.max(0, Math.min(100, Math.round(v)));
    if (bar.value !== clamped || !bar.hasAttribute('value')) bar.value = clamped;
    setText(text, `${clamped} %`);
  };
  set(value);
  return { element, set };
}

/** A message for an API or network error, announced to screen readers. */
export function errorBox(err: unknown): HTMLElement {
  const text = describeError(err);
  return el('p', { class: 'error', attrs: { role: 'alert' }, text });
}

/** One line for any error, with the API's code when there is one. */
export function describeError(err: unknown): string {
  if (isApiError(err)) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

function isApiError(err: unknown): err is ApiError {
  return err instanceof Error && err.name === 'ApiError' && 'code' in err;
}

/**
 * Wraps a table so it scrolls sideways on a narrow screen instead of squeezing its columns;
 * focusable and named, so keyboard users can scroll it too.
 */
export function tableWrap(table: HTMLTableElement, label: string): HTMLDivElement {
  return el(
    'div',
    { class: 'table-wrap', attrs: { role: 'region', 'aria-label': label, tabindex: 0 } },
    table,
  );
}

/** `<table>` with a caption (hidden visually) and header cells. */
export function table(
  caption: string,
  headers: (string | HTMLElement)[],
  body: HTMLTableSectionElement,
): HTMLTableElement {
  const head = el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { attrs: { scope: 'col' } }, h))));
  return el('table', {}, el('caption', { class: 'sr-only', text: caption }), head, body);
}

/** A view's heading block. */
export function viewHead(title: string, ...extra: (HTMLElement | null)[]): HTMLElement {
  return el('div', { class: 'view-head' }, el('h1', { text: title }), ...extra);
}
