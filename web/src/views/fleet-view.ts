/**
 * The fleet: every device with its site, product, installed version, online state (live from the
 * retained `fleetflash/devices/<deviceId>` topics) and last update; search, filters, and a
 * selection that the launch view picks up.
 */
import { formatProductId, type DeviceRecord } from '../../../src/protocol/index.js';
import type { AppContext, View } from '../app-context.js';
import { errorBox, setBadge, stateBadge, table, tableWrap, viewHead } from '../components.js';
import { el, field, frameBatcher, replaceChildren, setAttr, setText, uid } from '../dom.js';
import { describeErrorCode } from '../error-codes.js';
import { humanize } from '../format.js';
import { jobHref } from '../router.js';

/** More rows than this make the page sluggish and nobody reads them: narrow the filters instead. */
const RENDER_LIMIT = 500;

interface Filters {
  q: string;
  product: string;
  online: '' | 'true' | 'false';
  site: string;
}

interface Row {
  tr: HTMLTableRowElement;
  check: HTMLInputElement;
  version: HTMLTableCellElement;
  online: HTMLSpanElement;
  last: HTMLTableCellElement;
  /** The record the cells show, to skip repainting unchanged rows. */
  shown: DeviceRecord | null;
}

/** Pure: the devices that pass every filter. */
export function filterFleet(devices: readonly DeviceRecord[], f: Filters): DeviceRecord[] {
  const q = f.q.trim().toLowerCase();
  return devices.filter(
    (d) =>
      (f.product === '' || String(d.productId) === f.product) &&
      (f.online === '' || String(d.online) === f.online) &&
      (f.site === '' || d.portalId === f.site.trim().toLowerCase()) &&
      (q === '' ||
        [d.deviceId, d.productName, d.customName, d.version].some(
          (s) => s?.toLowerCase().includes(q) ?? false,
        )),
  );
}

/** Mounts the fleet view. */
export function fleetView(ctx: AppContext): View {
  const filters: Filters = { q: '', product: '', online: '', site: '' };
  const rows = new Map<string, Row>();
  let visible: DeviceRecord[] = [];

  const summary = el('p', { class: 'muted', attrs: { 'aria-live': 'polite' } });
  const search = el('input', {
    attrs: { type: 'search', placeholder: 'device id, product, version…', autocomplete: 'off' },
  });
  const product = el('select', {}, el('option', { attrs: { value: '' }, text: 'All products' }));
  const online = el(
    'select',
    {},
    el('option', { attrs: { value: '' }, text: 'Online and offline' }),
    el('option', { attrs: { value: 'true' }, text: 'Online' }),
    el('option', { attrs: { value: 'false' }, text: 'Offline' }),
  );
  const sitesList = el('datalist', { attrs: { id: uid('sites') } });
  const site = el('input', {
    attrs: {
      type: 'text',
      list: sitesList.id,
      placeholder: 'portal id',
      autocomplete: 'off',
      spellcheck: 'false',
    },
  });
  const filterForm = el(
    'form',
    {
      class: 'filters',
      attrs: { role: 'search', 'aria-label': 'Filter devices' },
      on: { submit: (e) => e.preventDefault() },
    },
    field('Search', search),
    field('Product', product),
    field('Online', online),
    field('Site', site),
    sitesList,
  );
  const onFilter = () => {
    filters.q = search.value;
    filters.product = product.value;
    filters.online = online.value as Filters['online'];
    filters.site = site.value;
    repaint.schedule();
  };
  for (const input of [search, site]) input.addEventListener('input', onFilter);
  for (const select of [product, online]) select.addEventListener('change', onFilter);

  const selectAll = el('input', { attrs: { type: 'checkbox', 'aria-label': 'Select all visible devices' } });
  selectAll.addEventListener('change', () => {
    for (const d of visible.slice(0, RENDER_LIMIT)) {
      if (selectAll.checked) ctx.selection.add(d.deviceId);
      else ctx.selection.delete(d.deviceId);
    }
    for (const r of rows.values()) r.check.checked = ctx.selection.has(r.tr.dataset.deviceId ?? '');
    updateSelection();
  });

  // Viewers cannot launch, so they get no selection column and no selection toolbar.
  const pick = ctx.canOperate;
  const columns = ['Site', 'Device', 'Product', 'Installed', 'Online', 'Last update'];
  const tbody = el('tbody');
  const grid = table('Devices of the fleet', pick ? [selectAll, ...columns] : columns, tbody);
  grid.classList.add('fleet-table');
  const more = el('p', { class: 'muted more' });

  const selectedCount = el('span', { attrs: { 'aria-live': 'polite' } });
  const clear = el('button', { attrs: { type: 'button' }, text: 'Clear selection' });
  clear.addEventListener('click', () => {
    ctx.selection.clear();
    for (const r of rows.values()) r.check.checked = false;
    updateSelection();
  });
  const launch = el('button', {
    class: 'primary',
    attrs: { type: 'button', 'data-action': 'launch' },
    text: 'Update selected…',
  });
  launch.addEventListener('click', () => ctx.navigate('#/launch'));
  const toolbar = pick ? el('div', { class: 'toolbar' }, selectedCount, clear, launch) : null;

  const status = el('div');
  const element = el(
    'section',
    { class: 'view fleet-view', attrs: { 'aria-labelledby': 'fleet-title' } },
    viewHead('Fleet', summary),
    filterForm,
    toolbar,
    status,
    tableWrap(grid, 'Devices'),
    more,
  );
  element.querySelector('h1')?.setAttribute('id', 'fleet-title');

  function updateSelection(): void {
    const n = ctx.selection.size;
    setText(selectedCount, `${n} selected`);
    clear.disabled = n === 0;
    launch.disabled = n === 0;
    const shown = visible.slice(0, RENDER_LIMIT);
    const picked = shown.filter((d) => ctx.selection.has(d.deviceId)).length;
    selectAll.checked = shown.length > 0 && picked === shown.length;
    selectAll.indeterminate = picked > 0 && picked < shown.length;
  }

  function makeRow(d: DeviceRecord): Row {
    const check = el('input', { attrs: { type: 'checkbox', 'aria-label': `Select ${d.deviceId}` } });
    check.checked = ctx.selection.has(d.deviceId);
    check.addEventListener('change', () => {
      if (check.checked) ctx.selection.add(d.deviceId);
      else ctx.selection.delete(d.deviceId);
      updateSelection();
    });
    const version = el('td', { class: 'mono' });
    const onlineBadge = stateBadge('offline');
    const last = el('td');
    const device = el('td', {}, el('span', { class: 'mono', text: `${d.service}/${d.instance}` }));
    if (d.customName) device.append(el('br'), el('span', { class: 'muted', text: d.customName }));
    const productCell = el(
      'td',
      {},
      d.productName ?? 'unknown product',
      d.productId !== null
        ? el('span', { class: 'muted mono', text: ` ${formatProductId(d.productId)}` })
        : null,
    );
    const tr = el(
      'tr',
      { attrs: { 'data-device-id': d.deviceId } },
      pick ? el('td', {}, check) : null,
      el('td', { class: 'mono', text: d.portalId }),
      device,
      productCell,
      version,
      el('td', {}, onlineBadge),
      last,
    );
    return { tr, check, version, online: onlineBadge, last, shown: null };
  }

  function paintRow(row: Row, d: DeviceRecord): void {
    if (row.shown === d) return;
    row.shown = d;
    setText(row.version, d.version ?? '–');
    setBadge(row.online, d.online ? 'online' : 'offline');
    setAttr(row.tr, 'data-online', String(d.online));
    const u = d.lastUpdate;
    if (!u) {
      replaceChildren(row.last, el('span', { class: 'muted', text: 'none yet' }));
      return;
    }
    const error = u.errorCode
      ? el('span', { class: 'muted', text: ` ${describeErrorCode(u.errorCode)}` })
      : null;
    replaceChildren(
      row.last,
      stateBadge(u.state, humanize(u.state)),
      ' ',
      el('a', { attrs: { href: jobHref(u.jobId), title: `job ${u.jobId}` }, text: `→ ${u.toVersion}` }),
      error,
    );
  }

  function paint(): void {
    const all = ctx.fleet.list();
    visible = filterFleet(all, filters);
    const shown = visible.slice(0, RENDER_LIMIT);
    const trs: HTMLTableRowElement[] = [];
    for (const d of shown) {
      let row = rows.get(d.deviceId);
      if (!row) {
        row = makeRow(d);
        rows.set(d.deviceId, row);
      }
      paintRow(row, d);
      trs.push(row.tr);
    }
    // Replace the body only when the set or order of rows changed: live updates touch cells only.
    const current = tbody.children;
    if (current.length !== trs.length || trs.some((tr, i) => current[i] !== tr))
      tbody.replaceChildren(...trs);
    if (all.length && !trs.length)
      tbody.replaceChildren(
        el(
          'tr',
          {},
          el('td', {
            attrs: { colspan: pick ? 7 : 6 },
            class: 'muted',
            text: 'No device matches the filters.',
          }),
        ),
      );
    const onlineCount = all.filter((d) => d.online).length;
    setText(
      summary,
      `${all.length} devices · ${onlineCount} online · ${new Set(all.map((d) => d.portalId)).size} sites`,
    );
    setText(
      more,
      visible.length > RENDER_LIMIT
        ? `Showing ${RENDER_LIMIT} of ${visible.length} matching devices; narrow the filters to see the rest.`
        : '',
    );
    updateOptions(all);
    updateSelection();
  }

  let knownProducts = '';
  let knownSites = '';
  function updateOptions(all: DeviceRecord[]): void {
    const products = new Map<number, string>();
    for (const d of all)
      if (d.productId !== null) products.set(d.productId, d.productName ?? formatProductId(d.productId));
    const pkey = [...products.keys()].sort().join(',');
    if (pkey !== knownProducts) {
      knownProducts = pkey;
      const value = product.value;
      replaceChildren(
        product,
        el('option', { attrs: { value: '' }, text: 'All products' }),
        ...[...products.entries()]
          .sort((a, b) => a[1].localeCompare(b[1]))
          .map(([id, name]) =>
            el('option', { attrs: { value: String(id) }, text: `${name} (${formatProductId(id)})` }),
          ),
      );
      product.value = value;
    }
    const sites = [...new Set(all.map((d) => d.portalId))].sort();
    const skey = sites.join(',');
    if (skey !== knownSites) {
      knownSites = skey;
      replaceChildren(sitesList, ...sites.map((s) => el('option', { attrs: { value: s } })));
    }
  }

  const repaint = frameBatcher(paint);
  const offChange = ctx.fleet.onChange(() => repaint.schedule());
  if (ctx.fleet.loaded) paint();
  else {
    replaceChildren(status, el('p', { class: 'muted', text: 'Loading the fleet…' }));
    ctx.fleet.load().then(
      () => replaceChildren(status),
      (err: unknown) => replaceChildren(status, errorBox(err)),
    );
  }
  updateSelection();

  return {
    element,
    title: 'Fleet',
    close() {
      offChange();
      repaint.cancel();
    },
  };
}
