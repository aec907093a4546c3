/**
 * The portal's entry point: sign-in, the shell (header with navigation, connection state and the
 * user), and a hash router that mounts one view at a time.
 */
import { ApiClient, type Me } from './api-client.js';
import type { AppContext, View } from './app-context.js';
import { setBadge, stateBadge } from './components.js';
import { el, replaceChildren } from './dom.js';
import { FleetStore } from './fleet-store.js';
import { LiveConnection, type LiveState } from './live-connection.js';
import { parseRoute, type Route } from './router.js';
import { clearToken, loadToken, saveToken } from './session.js';
import { firmwareView } from './views/firmware-view.js';
import { fleetView } from './views/fleet-view.js';
import { jobView } from './views/job-view.js';
import { jobsView } from './views/jobs-view.js';
import { launchView } from './views/launch-view.js';
import { signInView } from './views/sign-in-view.js';

const root = document.getElementById('app') ?? document.body;

const LIVE_LABELS: Record<LiveState, string> = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  offline: 'offline',
};

function showSignIn(notice?: string): void {
  document.title = 'Sign in · fleetflash';
  replaceChildren(
    root,
    signInView((token, me) => {
      saveToken(token);
      startApp(token, me);
    }, notice),
  );
  root.querySelector('input')?.focus();
}

/** Builds the shell for a signed-in user and starts routing. */
function startApp(token: string, me: Me): void {
  let signedOut = false;
  const signOut = (notice?: string) => {
    if (signedOut) return;
    signedOut = true;
    current?.close();
    window.removeEventListener('hashchange', route);
    fleet.close();
    live.close();
    clearToken();
    showSignIn(notice);
  };
  const api = new ApiClient(token, () => signOut('Your session ended; sign in again.'));
  const live = new LiveConnection({
    credentials: () => api.mqttCredentials(),
    onHandlerError: (err) => reportError(err),
  });
  const fleet = new FleetStore(api, live);
  const ctx: AppContext = {
    api,
    live,
    fleet,
    me,
    canOperate: me.role === 'operator',
    selection: new Set(),
    navigate: (hash) => {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
  };

  const navItems: { href: string; label: string; match: Route['name'][] }[] = [
    { href: '#/fleet', label: 'Fleet', match: ['fleet', 'launch'] },
    { href: '#/firmware', label: 'Firmware', match: ['firmware'] },
    { href: '#/jobs', label: 'Jobs', match: ['jobs', 'job'] },
  ];
  const links = navItems.map((n) => ({ ...n, a: el('a', { attrs: { href: n.href }, text: n.label }) }));
  const nav = el(
    'nav',
    { attrs: { 'aria-label': 'Main' } },
    el(
      'ul',
      {},
      ...links.map((l) => el('li', {}, l.a)),
      // The BullMQ dashboard is a separate page mounted by the service; only operators need it.
      ctx.canOperate
        ? el(
            'li',
            {},
            el('a', {
              attrs: { href: '/admin/queues', target: '_blank', rel: 'noopener' },
              text: 'Queues ↗',
            }),
          )
        : null,
    ),
  );
  const liveBadge = stateBadge('connecting', LIVE_LABELS.connecting);
  const liveStatus = el(
    'span',
    { class: 'live', attrs: { role: 'status', 'aria-live': 'polite', 'data-live': 'connecting' } },
    el('span', { class: 'sr-only', text: 'Live updates: ' }),
    liveBadge,
  );
  live.onState((state) => {
    setBadge(liveBadge, `live-${state}`, LIVE_LABELS[state]);
    liveStatus.dataset.live = state;
  });
  const signOutButton = el('button', { class: 'small', attrs: { type: 'button' }, text: 'Sign out' });
  signOutButton.addEventListener('click', () => signOut());
  const user = el(
    'span',
    { class: 'user' },
    el('span', { attrs: { 'data-user': '' }, text: me.name }),
    ' ',
    el('span', { class: 'role', attrs: { 'data-role': me.role }, text: me.role }),
  );
  const header = el(
    'header',
    { class: 'top' },
    el('a', { class: 'brand', attrs: { href: '#/fleet' }, text: 'fleetflash' }),
    nav,
    el('div', { class: 'who' }, liveStatus, user, signOutButton),
  );
  const main = el('main', { attrs: { id: 'main', tabindex: -1 } });
  const skip = el('a', { class: 'skip', attrs: { href: '#main' }, text: 'Skip to content' });
  skip.addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  replaceChildren(root, skip, header, main);

  let current: View | null = null;
  function route(): void {
    const r = parseRoute(location.hash);
    current?.close();
    current = mount(r);
    replaceChildren(main, current.element);
    document.title = `${current.title} · fleetflash`;
    for (const l of links) {
      if (l.match.includes(r.name)) l.a.setAttribute('aria-current', 'page');
      else l.a.removeAttribute('aria-current');
    }
  }
  function mount(r: Route): View {
    switch (r.name) {
      case 'fleet':
        return fleetView(ctx);
      case 'firmware':
        return firmwareView(ctx);
      case 'launch':
        return launchView(ctx);
      case 'jobs':
        return jobsView(ctx);
      case 'job':
        return jobView(ctx, r.id);
      case 'not-found':
        return {
          element: el(
            'section',
            { class: 'view' },
            el('h1', { text: 'Not found' }),
            el(
              'p',
              {},
              `Nothing at ${r.path}. `,
              el('a', { attrs: { href: '#/fleet' }, text: 'Go to the fleet' }),
            ),
          ),
          title: 'Not found',
          close() {},
        };
    }
  }
  window.addEventListener('hashchange', route);
  route();
  void live.start();
}

/** Starts with the stored (or `#token=`) token if it still works, else the sign-in form. */
function boot(): void {
  const token = loadToken();
  if (!token) return showSignIn();
  replaceChildren(root, el('p', { class: 'muted boot', text: 'Signing in…' }));
  new ApiClient(token).me().then(
    (me) => startApp(token, me),
    (err: unknown) => {
      if ((err as { status?: number }).status === 401) {
        clearToken();
        showSignIn('That token is no longer valid; sign in again.');
      } else {
        showSignIn(`Could not reach the server: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  );
}

boot();
