/**
 * The job log as it appears on the page: an ordered list that tails like a build log (it follows new
 * lines while the reader is at the bottom, and stays put when they scrolled up to read), one
 * `<li data-seq>` per line, and at most {@link LOG_LIMIT} lines kept in the page.
 */
import type { JobEvent } from '../../../src/protocol/index.js';
import { el, setText } from '../dom.js';
import { formatTime } from '../format.js';

/** Log lines kept in the page; older ones leave the view (the API still has them). */
export const LOG_LIMIT = 5000;

/** The log list and a note line above it. */
export interface LogList {
  element: HTMLOListElement;
  note: HTMLParagraphElement;
  /** Appends lines that are already in order and new (the feed guarantees both). */
  append(events: JobEvent[]): void;
}

/** Creates an empty {@link LogList}. */
export function logList(): LogList {
  const element = el('ol', {
    class: 'log',
    // role=log is a live region already; aria-live is spelled out for older screen readers.
    attrs: { role: 'log', 'aria-live': 'polite', 'aria-label': 'Job log', tabindex: 0 },
  });
  const note = el('p', { class: 'muted' });
  const append = (events: JobEvent[]) => {
    const follow = element.scrollHeight - element.scrollTop - element.clientHeight < 40;
    const frag = document.createDocumentFragment();
    for (const e of events) {
      frag.append(
        el(
          'li',
          { class: `level-${e.level}`, attrs: { 'data-seq': e.seq } },
          el('time', { attrs: { datetime: e.ts }, text: formatTime(e.ts) }),
          el('span', { class: 'dev', text: e.deviceId ?? 'job' }),
          el('span', { class: 'msg', text: e.message }),
        ),
      );
    }
    element.append(frag);
    let dropped = 0;
    while (element.childElementCount > LOG_LIMIT && element.firstElementChild) {
      element.firstElementChild.remove();
      dropped += 1;
    }
    if (dropped) setText(note, `Earlier lines are not shown (the page keeps the last ${LOG_LIMIT}).`);
    if (follow) element.scrollTop = element.scrollHeight;
  };
  return { element, note, append };
}
