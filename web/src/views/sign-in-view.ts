/** Sign in with an API token; the token is checked with `GET /api/me` before it is kept. */
import { ApiClient, type Me } from '../api-client.js';
import { describeError } from '../components.js';
import { el, field, replaceChildren } from '../dom.js';

/** Renders the sign-in form; calls `onSignedIn` with a working token and who it belongs to. */
export function signInView(onSignedIn: (token: string, me: Me) => void, notice?: string): HTMLElement {
  const token = el('input', {
    attrs: {
      type: 'password',
      required: true,
      autocomplete: 'current-password',
      spellcheck: 'false',
      name: 'token',
    },
  });
  const message = el('p', { attrs: { role: 'alert' } });
  if (notice) {
    message.className = 'muted';
    message.textContent = notice;
  }
  const submit = el('button', { class: 'primary', attrs: { type: 'submit' }, text: 'Sign in' });
  const form = el(
    'form',
    { class: 'card sign-in', attrs: { 'aria-labelledby': 'sign-in-title' } },
    el('h1', { attrs: { id: 'sign-in-title' }, text: 'Sign in to fleetflash' }),
    field('Access token', token, 'The operator or viewer token you were given'),
    message,
    el('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = token.value.trim();
    if (!value) return;
    submit.disabled = true;
    replaceChildren(message);
    new ApiClient(value)
      .me()
      .then(
        (me) => onSignedIn(value, me),
        (err: unknown) => {
          message.className = 'error';
          message.textContent =
            (err as { status?: number }).status === 401
              ? 'This token is not valid.'
              : `Could not sign in: ${describeError(err)}`;
        },
      )
      .finally(() => {
        submit.disabled = false;
      });
  });
  return el('main', { class: 'sign-in-page', attrs: { id: 'main' } }, form);
}
