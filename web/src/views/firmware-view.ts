/**
 * Firmware images: name, version, the products each fits, size and SHA-256; and, for operators, an
 * upload form with a progress bar.
 */
import {
  formatProductId,
  isVersion,
  parseProductId,
  productById,
  type FirmwareRecord,
} from '../../../src/protocol/index.js';
import type { AppContext, View } from '../app-context.js';
import { describeError, errorBox, progressBar, table, tableWrap, viewHead } from '../components.js';
import { el, field, replaceChildren } from '../dom.js';
import { formatBytes, formatDateTime, shortHash } from '../format.js';

/** `0xA058 SmartSolar MPPT 150/35` for a product id. */
export function productLabel(productId: number): string {
  const p = productById(productId);
  return p ? `${formatProductId(productId)} ${p.name}` : formatProductId(productId);
}

/** Mounts the firmware view. */
export function firmwareView(ctx: AppContext): View {
  const tbody = el('tbody');
  const status = el('div');
  const list = tableWrap(
    table('Firmware images', ['Name', 'Version', 'Fits products', 'Size', 'SHA-256', 'Uploaded'], tbody),
    'Firmware images',
  );
  const element = el(
    'section',
    { class: 'view firmware-view' },
    viewHead('Firmware'),
    ctx.canOperate ? uploadForm(ctx, () => void load()) : null,
    status,
    list,
  );

  let closed = false;
  async function load(): Promise<void> {
    try {
      const images = await ctx.api.firmware();
      if (closed) return;
      replaceChildren(status);
      replaceChildren(
        tbody,
        ...(images.length
          ? images.map(imageRow)
          : [
              el(
                'tr',
                {},
                el('td', { attrs: { colspan: 6 }, class: 'muted', text: 'No firmware uploaded yet.' }),
              ),
            ]),
      );
    } catch (err) {
      if (!closed) replaceChildren(status, errorBox(err));
    }
  }
  void load();

  return {
    element,
    title: 'Firmware',
    close() {
      closed = true;
    },
  };
}

function imageRow(fw: FirmwareRecord): HTMLTableRowElement {
  const products = el(
    'ul',
    { class: 'plain' },
    ...fw.productIds.map((id) => el('li', { text: productLabel(id) })),
  );
  // Short in the table, whole on hover and on copy.
  const hash = el('code', { attrs: { title: fw.sha256 }, text: shortHash(fw.sha256) });
  const copy = el('button', {
    class: 'small',
    attrs: { type: 'button', 'aria-label': `Copy SHA-256 of ${fw.name} ${fw.version}` },
    text: 'Copy',
  });
  copy.addEventListener('click', () => {
    // navigator.clipboard is missing on plain http from another host (not a secure context).
    const written =
      (navigator.clipboard as Clipboard | undefined)?.writeText(fw.sha256) ??
      Promise.reject(new Error('no clipboard'));
    written.then(
      () => {
        copy.textContent = 'Copied';
      },
      () => {
        // No clipboard: show the whole hash selected, so Ctrl+C copies it.
        hash.textContent = fw.sha256;
        const range = document.createRange();
        range.selectNodeContents(hash);
        getSelection()?.removeAllRanges();
        getSelection()?.addRange(range);
      },
    );
  });
  return el(
    'tr',
    { attrs: { 'data-firmware-id': fw.id } },
    el('td', {}, fw.name, fw.notes ? el('div', { class: 'muted', text: fw.notes }) : null),
    el('td', { class: 'mono', text: fw.version }),
    el('td', {}, products),
    el('td', { class: 'num', text: formatBytes(fw.size) }),
    el('td', { class: 'nowrap' }, hash, ' ', copy),
    el('td', {}, formatDateTime(fw.uploadedAt), el('div', { class: 'muted', text: fw.uploadedBy })),
  );
}

/** The operator's upload form; `onUploaded` refreshes the list. */
function uploadForm(ctx: AppContext, onUploaded: () => void): HTMLElement {
  const file = el('input', { attrs: { type: 'file', required: true } });
  const version = el('input', {
    attrs: {
      type: 'text',
      required: true,
      placeholder: 'v1.67, v3.70~33, v504',
      autocomplete: 'off',
      spellcheck: 'false',
    },
  });
  const products = el('input', {
    attrs: {
      type: 'text',
      required: true,
      placeholder: '0xA058, 0xA389',
      autocomplete: 'off',
      spellcheck: 'false',
    },
  });
  const name = el('input', { attrs: { type: 'text', maxlength: 120, autocomplete: 'off' } });
  const notes = el('textarea', { attrs: { rows: 2, maxlength: 2000 } });
  const bar = progressBar('Upload progress');
  bar.element.hidden = true;
  const message = el('p', { attrs: { role: 'status', 'aria-live': 'polite' } });
  const submit = el('button', { class: 'primary', attrs: { type: 'submit' }, text: 'Upload' });

  const form = el(
    'form',
    { class: 'upload card', attrs: { 'aria-labelledby': 'upload-title', 'data-form': 'upload' } },
    el('h2', { attrs: { id: 'upload-title' }, text: 'Upload an image' }),
    el(
      'div',
      { class: 'grid' },
      field('Image file', file),
      field('Version', version, 'As the device reports it'),
      field('Fits products', products, 'Product ids in hex, comma separated'),
      field('Name (optional)', name, 'Default: the first product’s name'),
    ),
    field('Release notes (optional)', notes),
    el('div', { class: 'actions' }, submit, bar.element),
    message,
  );

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const picked = file.files?.[0];
    const ids = products.value
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    // Check here what the API would refuse anyway, so the operator gets the message before a long upload.
    const problem = !picked
      ? 'Choose an image file.'
      : !isVersion(version.value.trim())
        ? 'The version must look like v1.67, v3.70~33 or v504.'
        : ids.length === 0 || ids.some((p) => parseProductId(p) === null)
          ? 'Name at least one product id in hex, e.g. 0xA058.'
          : null;
    if (problem || !picked) {
      message.className = 'error';
      message.textContent = problem;
      return;
    }
    submit.disabled = true;
    bar.element.hidden = false;
    bar.set(0);
    message.className = '';
    message.textContent = `Uploading ${picked.name}…`;
    ctx.api
      .uploadFirmware(
        picked,
        {
          version: version.value.trim(),
          products: ids.join(','),
          name: name.value.trim() || undefined,
          notes: notes.value.trim() || undefined,
        },
        (loaded, total) => bar.set((loaded / total) * 100),
      )
      .then(
        (fw) => {
          bar.set(100);
          message.className = 'ok';
          message.textContent = `Uploaded ${fw.name} ${fw.version} (${formatBytes(fw.size)}, SHA-256 ${shortHash(fw.sha256)}).`;
          form.reset();
          onUploaded();
        },
        (err: unknown) => {
          message.className = 'error';
          message.textContent = `Upload failed: ${describeError(err)}`;
        },
      )
      .finally(() => {
        submit.disabled = false;
      });
  });
  replaceChildren(message);
  return form;
}
