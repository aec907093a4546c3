/**
 * Launching an update (operators only): pick an image, see which selected devices it fits and which
 * not and why, optionally tighten the timeouts, confirm with the point-of-no-return warning, then
 * `POST /api/jobs` and go to the job's page.
 */
import { PHASES, type ExecutionTimeouts, type FirmwareRecord } from '../../../src/protocol/index.js';
import type { LaunchRequest } from '../api-client.js';
import type { AppContext, View } from '../app-context.js';
import { describeError, errorBox, table, tableWrap, viewHead } from '../components.js';
import { el, field, replaceChildren } from '../dom.js';
import { fitCount, planLaunch, type LaunchPlan } from '../launch-plan.js';
import { jobHref } from '../router.js';
import { productLabel } from './firmware-view.js';

type TimeoutKey = keyof ExecutionTimeouts;

/** Timeout fields in phase order, then the overall limit. */
const TIMEOUT_FIELDS: readonly { key: TimeoutKey; label: string }[] = [
  ...PHASES.map((p) => ({ key: `${p}Ms` as TimeoutKey, label: `${p[0].toUpperCase()}${p.slice(1)}` })),
  { key: 'totalMs', label: 'Whole update' },
];

/** Mounts the launch view. */
export function launchView(ctx: AppContext): View {
  const element = el('section', { class: 'view launch-view' }, viewHead('Launch an update'));
  if (!ctx.canOperate) {
    element.append(
      el('p', {
        class: 'error',
        attrs: { role: 'alert' },
        text: 'Launching updates needs the operator role.',
      }),
    );
    return { element, title: 'Launch', close() {} };
  }
  let closed = false;
  const body = el('div', {}, el('p', { class: 'muted', text: 'Loading firmware and fleet…' }));
  element.append(body);
  Promise.all([ctx.api.firmware(), ctx.fleet.load()]).then(
    ([images]) => {
      if (!closed) replaceChildren(body, ...form(ctx, images));
    },
    (err: unknown) => {
      if (!closed) replaceChildren(body, errorBox(err));
    },
  );
  return {
    element,
    title: 'Launch',
    close() {
      closed = true;
    },
  };
}

function form(ctx: AppContext, images: FirmwareRecord[]): HTMLElement[] {
  const selected = [...ctx.selection];
  if (selected.length === 0) {
    return [
      el(
        'p',
        {},
        'No devices selected. ',
        el('a', { attrs: { href: '#/fleet' }, text: 'Pick devices in the fleet view' }),
        ' first.',
      ),
    ];
  }
  if (images.length === 0) {
    return [
      el(
        'p',
        {},
        'No firmware uploaded yet. ',
        el('a', { attrs: { href: '#/firmware' }, text: 'Upload an image' }),
        ' first.',
      ),
    ];
  }
  const lookup = (id: string) => ctx.fleet.get(id);
  // The image that fits most of the selection comes first and is preselected.
  const ranked = [...images].sort((a, b) => fitCount(selected, lookup, b) - fitCount(selected, lookup, a));
  const imageSelect = el(
    'select',
    { attrs: { 'data-field': 'firmware' } },
    ...ranked.map((img) =>
      el('option', {
        attrs: { value: img.id },
        text: `${img.name} ${img.version} — fits ${fitCount(selected, lookup, img)} of ${selected.length}`,
      }),
    ),
  );
  const fitsBox = el('div', { class: 'plan' });
  const timeoutInputs = new Map<TimeoutKey, HTMLInputElement>();
  const timeouts = el(
    'details',
    { class: 'card' },
    el('summary', { text: 'Timeouts (optional)' }),
    el('p', {
      class: 'muted',
      text: 'In seconds; leave empty for the service’s default. A device that exceeds one is marked timed out.',
    }),
    el(
      'div',
      { class: 'grid' },
      ...TIMEOUT_FIELDS.map(({ key, label }) => {
        const input = el('input', {
          attrs: {
            type: 'number',
            min: 0.1,
            step: 'any',
            inputmode: 'decimal',
            placeholder: 'default',
            'data-timeout': key,
          },
        });
        timeoutInputs.set(key, input);
        return field(label, input);
      }),
    ),
  );
  // ROLLOUT (later issue): maxConcurrent, perMinute and the abort rule (failureThresholdPercent after
  // minExecuted) go here. They are shown disabled and are not sent until the API accepts them.
  const rollout = el(
    'fieldset',
    { class: 'card placeholder', attrs: { disabled: true, 'data-placeholder': 'rollout' } },
    el('legend', { text: 'Rollout and abort rule — coming soon' }),
    el('p', {
      class: 'muted',
      text: 'Staged rollout (devices at once, starts per minute) and an automatic abort after too many failures are not available yet: every device starts as soon as a worker is free.',
    }),
    el(
      'div',
      { class: 'grid' },
      field('At most at once', el('input', { attrs: { type: 'number', placeholder: 'no limit' } })),
      field('Starts per minute', el('input', { attrs: { type: 'number', placeholder: 'no limit' } })),
      field('Abort above failure %', el('input', { attrs: { type: 'number', placeholder: 'never' } })),
    ),
  );
  const problems = el('div', { attrs: { 'aria-live': 'polite' } });
  const review = el('button', {
    class: 'primary',
    attrs: { type: 'submit', 'data-action': 'review' },
    text: 'Review and launch…',
  });
  const dialog = el('dialog', { class: 'confirm', attrs: { 'aria-labelledby': 'confirm-title' } });

  let plan: LaunchPlan = { fits: [], misfits: [] };
  const image = () => images.find((i) => i.id === imageSelect.value) ?? ranked[0];
  const replan = () => {
    plan = planLaunch(selected, lookup, image());
    replaceChildren(fitsBox, ...renderPlan(plan, image()));
    review.disabled = plan.fits.length === 0;
    review.textContent = plan.fits.length
      ? `Review and launch on ${plan.fits.length} device${plan.fits.length === 1 ? '' : 's'}…`
      : 'No selected device fits this image';
  };
  imageSelect.addEventListener('change', replan);
  replan();

  const formEl = el(
    'form',
    { class: 'launch', attrs: { 'aria-label': 'Launch an update' } },
    field('Firmware image', imageSelect),
    fitsBox,
    timeouts,
    rollout,
    problems,
    el(
      'div',
      { class: 'actions' },
      review,
      el('a', { attrs: { href: '#/fleet' }, text: 'Back to the fleet' }),
    ),
  );
  formEl.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = readTimeouts(timeoutInputs);
    if (typeof t === 'string') {
      replaceChildren(problems, el('p', { class: 'error', attrs: { role: 'alert' }, text: t }));
      return;
    }
    replaceChildren(problems);
    const request: LaunchRequest = {
      firmwareId: image().id,
      devices: plan.fits.map((f) => f.device.deviceId),
      ...(t ? { timeouts: t } : {}),
    };
    confirmLaunch(ctx, dialog, request, image(), plan);
  });
  return [formEl, dialog];
}

function renderPlan(plan: LaunchPlan, image: FirmwareRecord): HTMLElement[] {
  const out: HTMLElement[] = [
    el(
      'p',
      { class: 'muted' },
      `${image.name} ${image.version} fits `,
      image.productIds.map(productLabel).join(', '),
      '.',
    ),
  ];
  if (plan.fits.length) {
    const rows = plan.fits.map(({ device, notes }) =>
      el(
        'tr',
        { attrs: { 'data-device-id': device.deviceId, 'data-fit': 'yes' } },
        el('td', { class: 'mono', text: device.deviceId }),
        el('td', { text: device.productName ?? '–' }),
        el('td', { class: 'mono', text: `${device.version ?? '?'} → ${image.version}` }),
        el('td', {}, notes.length ? notes.join('; ') : el('span', { class: 'muted', text: '–' })),
      ),
    );
    out.push(el('h2', { text: `Will be updated (${plan.fits.length})` }));
    out.push(
      tableWrap(
        table(
          'Devices that will be updated',
          ['Device', 'Product', 'Version', 'Notes'],
          el('tbody', {}, ...rows),
        ),
        'Devices that will be updated',
      ),
    );
  }
  if (plan.misfits.length) {
    out.push(el('h2', { text: `Left out: the image does not fit (${plan.misfits.length})` }));
    out.push(
      el(
        'ul',
        { class: 'misfits' },
        ...plan.misfits.map((m) =>
          el(
            'li',
            { attrs: { 'data-device-id': m.deviceId, 'data-fit': 'no' } },
            el('span', { class: 'mono', text: m.deviceId }),
            `: ${m.reason}`,
          ),
        ),
      ),
    );
  }
  return out;
}

/** Seconds in the inputs → a partial timeouts object; null when all are empty; a message when one is wrong. */
function readTimeouts(inputs: Map<TimeoutKey, HTMLInputElement>): Partial<ExecutionTimeouts> | null | string {
  const out: Partial<ExecutionTimeouts> = {};
  for (const [key, input] of inputs) {
    const raw = input.value.trim();
    if (raw === '') continue;
    const seconds = Number(raw);
    // The API accepts 100 ms to 7 days.
    if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 7 * 24 * 3600)
      return `Timeout “${key.replace(/Ms$/, '')}” must be between 0.1 s and 7 days.`;
    out[key] = Math.round(seconds * 1000);
  }
  return Object.keys(out).length ? out : null;
}

/** The confirm step: states plainly that a started update cannot be stopped, then launches. */
function confirmLaunch(
  ctx: AppContext,
  dialog: HTMLDialogElement,
  request: LaunchRequest,
  image: FirmwareRecord,
  plan: LaunchPlan,
): void {
  const n = request.devices.length;
  const status = el('div', { attrs: { 'aria-live': 'polite' } });
  const go = el('button', {
    class: 'danger',
    attrs: { type: 'button', 'data-action': 'confirm-launch' },
    text: `Start the update on ${n} device${n === 1 ? '' : 's'}`,
  });
  const cancel = el('button', { attrs: { type: 'button', 'data-action': 'cancel' }, text: 'Cancel' });
  const vebus = plan.fits.filter((f) => f.device.service === 'vebus').length;
  replaceChildren(
    dialog,
    el('h2', {
      attrs: { id: 'confirm-title' },
      text: `Update ${n} device${n === 1 ? '' : 's'} to ${image.name} ${image.version}?`,
    }),
    el(
      'div',
      { class: 'warning', attrs: { 'data-warning': 'point-of-no-return' } },
      el('strong', { text: 'An update cannot be stopped once it has started on a device.' }),
      el('p', {
        text: 'When a device accepts the install it downloads, flashes and reboots to the end; aborting the job only cancels the devices that have not accepted it yet. A device that fails mid-way may need a visit.',
      }),
      vebus
        ? el('p', {
            text: `${vebus} VE.Bus device${vebus === 1 ? '' : 's'}: the inverter’s AC output is interrupted while it flashes.`,
          })
        : null,
    ),
    plan.misfits.length
      ? el('p', {
          class: 'muted',
          text: `${plan.misfits.length} selected device(s) that the image does not fit are left out.`,
        })
      : null,
    status,
    el('div', { class: 'actions' }, go, cancel),
  );
  cancel.addEventListener('click', () => dialog.close());
  go.addEventListener('click', () => {
    go.disabled = true;
    cancel.disabled = true;
    replaceChildren(status, el('p', { class: 'muted', text: 'Launching…' }));
    ctx.api.launch(request).then(
      (job) => {
        dialog.close();
        ctx.selection.clear();
        ctx.navigate(jobHref(job.id));
      },
      (err: unknown) => {
        go.disabled = false;
        cancel.disabled = false;
        replaceChildren(
          status,
          el('p', {
            class: 'error',
            attrs: { role: 'alert' },
            text: `The launch failed: ${describeError(err)}`,
          }),
        );
      },
    );
  });
  dialog.showModal();
  cancel.focus();
}
