/**
 * The confirm step of aborting a job. It says plainly what an abort can and cannot do: devices that
 * have not accepted the install are canceled; those past the point of no return finish regardless.
 */
import type { AbortResult, ApiClient } from '../api-client.js';
import { errorBox } from '../components.js';
import { el, replaceChildren } from '../dom.js';

/** Fills `dialog`, opens it, and calls `onAborted` after a successful `POST /api/jobs/:id/abort`. */
export function openAbortDialog(
  dialog: HTMLDialogElement,
  api: ApiClient,
  jobId: string,
  inFlight: number,
  onAborted: (result: AbortResult) => void,
): void {
  const result = el('div', { attrs: { 'aria-live': 'polite' } });
  const go = el('button', {
    class: 'danger',
    attrs: { type: 'button', 'data-action': 'confirm-abort' },
    text: 'Abort the job',
  });
  const keep = el('button', { attrs: { type: 'button' }, text: 'Keep it running' });
  dialog.setAttribute('aria-labelledby', 'abort-title');
  replaceChildren(
    dialog,
    el('h2', { attrs: { id: 'abort-title' }, text: `Abort job ${jobId}?` }),
    el('p', { text: 'Devices that have not accepted the install yet are canceled.' }),
    el(
      'p',
      { class: 'warning' },
      el('strong', {
        text: inFlight
          ? `${inFlight} device${inFlight === 1 ? ' is' : 's are'} past the point of no return`
          : 'Devices already updating',
      }),
      ' cannot be stopped: they finish their update whatever happens.',
    ),
    result,
    el('div', { class: 'actions' }, go, keep),
  );
  keep.addEventListener('click', () => dialog.close());
  go.addEventListener('click', () => {
    go.disabled = true;
    api.abort(jobId).then(
      (res) => {
        dialog.close();
        onAborted(res);
      },
      (err: unknown) => {
        go.disabled = false;
        replaceChildren(result, errorBox(err));
      },
    );
  });
  dialog.showModal();
  // The safe choice has the focus: Enter must not abort by accident.
  keep.focus();
}
