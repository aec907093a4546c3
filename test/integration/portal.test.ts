/**
 * The operator portal in a real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) against the whole service: real Redis, the embedded broker with MQTT over
 * WebSocket, BullMQ workers and simulated GX sites. The bundle is built here first, with the same
 * function as `npm run build:web`, so a fresh clone needs no extra step.
 *
 * Browser MQTT credentials live only a few seconds here, so the portal has to renew them (and swap
 * connections) several times while a job runs: the no-gap/no-duplicate log checks cover that too.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { Fleet } from '../../devices-sim/index.js';
import { buildWeb } from '../../scripts/build-web.js';
import type { JobEvent, JobRecord } from '../../src/protocol/index.js';
import { startHarness, type Harness } from '../helpers/service-harness.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.resolve('test-results');
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** Browser MQTT credentials expire after 3–4 s (the API rounds down to the second): renewed every 2–3 s. */
const TOKEN_TTL_MS = 4000;

let h: Harness;
let browser: Browser;
/** Three sites at ×200: an MPPT update takes a few hundred ms, enough frames to see progress. */
let fleet: Fleet;
/** Two sites at ×60: a VE.Bus update takes several seconds, long enough to reload mid-job. */
let slow: Fleet;
const contexts: BrowserContext[] = [];
/** Uncaught errors of any page: a test fails if the portal threw. */
const pageErrors: Error[] = [];

beforeAll(async () => {
  await buildWeb();
  await mkdir(SHOTS, { recursive: true });
  h = await startHarness({ env: { BROWSER_TOKEN_TTL_MS: String(TOKEN_TTL_MS) } });
  fleet = await h.addFleet({ sites: 3, salt: 'portal', timeScale: 200 });
  slow = await h.addFleet({ sites: 2, salt: 'portal-slow', timeScale: 60 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-dev-shm-usage',
    ],
  });
}, 120_000);

afterEach(() => {
  expect(pageErrors.splice(0)).toEqual([]);
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await h?.close();
});

/** A fresh tab (own sessionStorage) that records every value a job-table progress bar takes. */
async function newPage(viewport = LAPTOP): Promise<Page> {
  const context = await browser.newContext({ viewport });
  contexts.push(context);
  await context.addInitScript(() => {
    const seen: number[] = [];
    (window as unknown as { __progressSeen: number[] }).__progressSeen = seen;
    new MutationObserver((mutations) => {
      for (const m of mutations) {
        const t = m.target;
        if (t instanceof HTMLProgressElement && t.closest('.job-table')) seen.push(t.value);
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['value'] });
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err));
  return page;
}

/** Opens the portal with `#token=` as the demo link does, and waits for the signed-in shell. */
async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${h.base}/#token=${token}`);
  await page.waitForSelector('[data-user]');
}

/** Every `data-seq` of the log, in page order. */
function logSeqs(page: Page): Promise<number[]> {
  return page.$$eval('.log li[data-seq]', (lis) => lis.map((li) => Number(li.getAttribute('data-seq'))));
}

async function backlog(jobId: string): Promise<JobEvent[]> {
  return (
    (await (await h.api(`/api/jobs/${jobId}/events?after=0&limit=1000`)).json()) as { events: JobEvent[] }
  ).events;
}

/** The log shows exactly the job's lines 1..n: none missing, none twice, in order. */
async function expectCompleteLog(page: Page, jobId: string): Promise<number[]> {
  const n = (await backlog(jobId)).length;
  await page.waitForFunction((count) => document.querySelectorAll('.log li[data-seq]').length >= count, n);
  const seqs = await logSeqs(page);
  expect(seqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  return seqs;
}

async function waitJobState(page: Page, state: JobRecord['state'], timeout = 60_000): Promise<void> {
  await page.waitForSelector(`[data-job-state][data-state="${state}"]`, { timeout });
}

function devicesOf(f: Fleet, service: string) {
  return f.devices().filter((d) => d.service === service);
}

test('an operator signs in, selects devices, launches through the confirm step and watches the job complete', async () => {
  const page = await newPage();
  const sockets: string[] = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await signIn(page, h.operatorToken);
  // The token left the address bar at once.
  expect(page.url()).not.toContain(h.operatorToken);
  expect(await page.textContent('[data-role]')).toBe('operator');
  await page.waitForSelector('[data-live="live"]');

  // The fleet view lists every simulated device with its product and version.
  const all = [...fleet.devices(), ...slow.devices()];
  await page.waitForFunction(
    (n) => document.querySelectorAll('.fleet-table tbody tr[data-device-id]').length === n,
    all.length,
  );
  for (const d of fleet.devices()) {
    const row = page.locator(`tr[data-device-id="${d.deviceId}"]`);
    expect(await row.getAttribute('data-online')).toBe('true');
    expect(await row.textContent()).toContain(d.version);
  }
  await page.screenshot({ path: path.join(SHOTS, 'portal-fleet-laptop.png'), fullPage: false });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(SHOTS, 'portal-fleet-phone.png'), fullPage: false });
  await page.setViewportSize(LAPTOP);

  // Select the MPPTs of the fast fleet with the search box and "select all visible", plus one battery monitor.
  const mppts = devicesOf(fleet, 'solarcharger');
  const battery = devicesOf(fleet, 'battery')[0];
  await page.getByLabel('Search').fill('solarcharger');
  await page.waitForFunction(
    (n) => {
      const rows = Array.from(document.querySelectorAll('.fleet-table tbody tr[data-device-id]'));
      return (
        rows.length === n && rows.every((r) => r.getAttribute('data-device-id')?.includes('.solarcharger.'))
      );
    },
    all.filter((d) => d.service === 'solarcharger').length,
  );
  // Every MPPT is visible now; the slow fleet's are taken out again by hand.
  await page.getByLabel('Select all visible devices').check();
  for (const d of devicesOf(slow, 'solarcharger')) await page.getByLabel(`Select ${d.deviceId}`).uncheck();
  await page.getByLabel('Search').fill('');
  await page.getByLabel(`Select ${battery.deviceId}`).check();
  expect(await page.textContent('.toolbar')).toContain(`${mppts.length + 1} selected`);

  // The launch view offers the MPPT image first and explains why the battery monitor is left out.
  await page.click('[data-action="launch"]');
  const image = h.image(mppts[0].productId);
  await page.waitForSelector('[data-field="firmware"]');
  expect(await page.inputValue('[data-field="firmware"]')).toBe(image.id);
  for (const d of mppts) await page.waitForSelector(`[data-fit="yes"][data-device-id="${d.deviceId}"]`);
  const misfit = await page.textContent(`[data-fit="no"][data-device-id="${battery.deviceId}"]`);
  expect(misfit).toContain('fits only 0xA058');
  // Rollout options are a marked placeholder for now: shown, disabled, never sent.
  const rollout = page.locator('[data-placeholder="rollout"] input');
  expect(await rollout.count()).toBe(3);
  for (const input of await rollout.all()) expect(await input.isDisabled()).toBe(true);

  // Confirm step: the point-of-no-return warning, then the launch.
  await page.click('[data-action="review"]');
  const warning = await page.textContent('dialog[open] [data-warning="point-of-no-return"]');
  expect(warning).toContain('cannot be stopped once it has started');
  const launched = page.waitForResponse(
    (r) => r.url().endsWith('/api/jobs') && r.request().method() === 'POST',
  );
  await page.click('[data-action="confirm-launch"]');
  const res = await launched;
  expect(res.status()).toBe(202);
  expect(Object.keys(JSON.parse(res.request().postData() ?? '{}') as object).sort()).toEqual([
    'devices',
    'firmwareId',
  ]);
  const { job } = (await res.json()) as { job: JobRecord };
  expect(job.total).toBe(mppts.length);
  await page.waitForURL(`**/#/jobs/${job.id}`);

  // Progress bars move, the job completes and every device succeeds.
  await page.waitForFunction(
    () => (window as unknown as { __progressSeen: number[] }).__progressSeen.some((v) => v > 0 && v < 100),
    null,
    {
      timeout: 30_000,
    },
  );
  await waitJobState(page, 'completed');
  await page.waitForFunction((n) => {
    const rows = Array.from(document.querySelectorAll('.job-table tbody tr[data-device-id]'));
    return rows.length === n && rows.every((r) => r.getAttribute('data-state') === 'succeeded');
  }, mppts.length);
  expect(await page.textContent('[data-count="succeeded"] b')).toBe(String(mppts.length));
  await expectCompleteLog(page, job.id);
  // No abort once the job is over.
  expect(await page.locator('[data-action="abort"]').isVisible()).toBe(false);
  // Credentials are renewed before they expire (a new WebSocket each time) and the header stays live
  // through the swap. A fast job can end before the first renewal: then the next one is awaited.
  if (sockets.length < 2) await page.waitForEvent('websocket', { timeout: 2 * TOKEN_TTL_MS });
  expect(sockets.length).toBeGreaterThanOrEqual(2);
  expect(await page.getAttribute('[data-live]', 'data-live')).toBe('live');
}, 120_000);

test('a reload mid-job shows the state at once and the log continues without gaps or duplicates', async () => {
  // VE.Bus: backup, flash and restore take seconds at ×60. Launched over the API; the UI launch is covered above.
  const vebus = devicesOf(slow, 'vebus')[0];
  const res = await h.api('/api/jobs', {
    method: 'POST',
    json: { firmwareId: h.image(vebus.productId).id, devices: [vebus.deviceId] },
  });
  expect(res.status).toBe(202);
  const { job } = (await res.json()) as { job: JobRecord };

  const page = await newPage();
  await signIn(page, h.operatorToken);
  await page.goto(`${h.base}/#/jobs/${job.id}`);
  // Wait until it is past the download: well inside the update, with log lines to continue from.
  await page.waitForSelector(`tr[data-device-id="${vebus.deviceId}"][data-state="in_progress"]`);
  await page.waitForFunction(
    () =>
      /installing|rebooting/.test(
        document.querySelector('.job-table tbody tr [data-col="phase"]')?.textContent ?? '',
      ),
    null,
    {
      timeout: 30_000,
    },
  );
  expect(await page.locator('[data-action="abort"]').isVisible()).toBe(true);
  await page.screenshot({ path: path.join(SHOTS, 'portal-job-running-laptop.png') });
  const before = await logSeqs(page);
  expect(before.length).toBeGreaterThan(2);

  await page.setViewportSize(PHONE);
  await page.reload();
  // At once: the REST snapshot, before any live message could have been needed.
  await page.waitForSelector(`tr[data-device-id="${vebus.deviceId}"][data-state="in_progress"]`, {
    timeout: 3000,
  });
  await page.waitForSelector('[data-job-state][data-state="in_progress"]', { timeout: 3000 });
  await page.waitForFunction(
    (n) => document.querySelectorAll('.log li[data-seq]').length >= n,
    before.length,
    { timeout: 3000 },
  );
  const stillRunning = (await (await h.api(`/api/jobs/${job.id}`)).json()) as { job: JobRecord };
  expect(stillRunning.job.state).toBe('in_progress');
  await page.screenshot({ path: path.join(SHOTS, 'portal-job-running-phone.png') });

  await waitJobState(page, 'completed');
  await page.waitForSelector(`tr[data-device-id="${vebus.deviceId}"][data-state="succeeded"]`);
  const after = await expectCompleteLog(page, job.id);
  // The log went on after the reload (the update still had lines to write then).
  expect(after.length).toBeGreaterThan(before.length);
  await page.setViewportSize(LAPTOP);
  await page.screenshot({ path: path.join(SHOTS, 'portal-job-done-laptop.png'), fullPage: true });
}, 120_000);

test('a viewer sees no launch, upload or abort controls', async () => {
  const vebus = devicesOf(slow, 'vebus')[1];
  const res = await h.api('/api/jobs', {
    method: 'POST',
    json: { firmwareId: h.image(vebus.productId).id, devices: [vebus.deviceId] },
  });
  const { job } = (await res.json()) as { job: JobRecord };

  // This time through the sign-in form.
  const page = await newPage();
  await page.goto(h.base);
  await page.getByLabel('Access token').fill('not-a-valid-token-at-all');
  await page.click('button[type="submit"]');
  await page.waitForSelector('.sign-in .error');
  await page.getByLabel('Access token').fill(h.viewerToken);
  await page.click('button[type="submit"]');
  await page.waitForSelector('[data-user]');
  expect(await page.textContent('[data-role]')).toBe('viewer');
  await page.waitForSelector('.fleet-table tbody tr[data-device-id]');
  expect(await page.locator('[data-action="launch"]').count()).toBe(0);
  expect(await page.locator('.fleet-table input[type="checkbox"]').count()).toBe(0);
  expect(await page.locator('a[href="/admin/queues"]').count()).toBe(0);

  await page.goto(`${h.base}/#/firmware`);
  await page.waitForSelector('tr[data-firmware-id]');
  expect(await page.locator('form[data-form="upload"], input[type="file"]').count()).toBe(0);

  await page.goto(`${h.base}/#/launch`);
  await page.waitForSelector('.launch-view [role="alert"]');
  expect(await page.locator('[data-action="review"], [data-field="firmware"]').count()).toBe(0);

  // A running job, which an operator could abort: the viewer gets no abort control.
  await page.goto(`${h.base}/#/jobs/${job.id}`);
  await waitJobState(page, 'in_progress');
  expect(await page.locator('[data-action="abort"]').count()).toBe(0);
  await waitJobState(page, 'completed');

  // Signing out forgets the token: a reload lands on the sign-in form.
  await page.click('button:text("Sign out")');
  await page.waitForSelector('.sign-in');
  await page.reload();
  await page.waitForSelector('.sign-in');
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
}, 120_000);

test('an operator aborts a running job through the confirm step; a device past the point of no return finishes', async () => {
  const gx = devicesOf(slow, 'platform')[0];
  // Signed in before the launch: at ×60 a GX spends only ~2 s between accepting the install and its
  // reboot, less than a cold page load on a busy box.
  const page = await newPage();
  await signIn(page, h.operatorToken);
  const res = await h.api('/api/jobs', {
    method: 'POST',
    json: { firmwareId: h.image(gx.productId).id, devices: [gx.deviceId] },
  });
  const { job } = (await res.json()) as { job: JobRecord };
  await page.goto(`${h.base}/#/jobs/${job.id}`);
  // Past the point of no return and not finished: the device accepted the install and is
  // downloading, verifying, installing or rebooting.
  await page.waitForFunction(
    () =>
      /downloading|verifying|installing|rebooting/.test(
        document.querySelector('.job-table tbody tr [data-col="phase"]')?.textContent ?? '',
      ),
    null,
    { timeout: 30_000 },
  );
  await page.click('[data-action="abort"]');
  expect(await page.textContent('dialog[open] .warning')).toContain(
    '1 device is past the point of no return',
  );
  await page.click('[data-action="confirm-abort"]');
  await waitJobState(page, 'aborted');
  expect(await page.textContent('.job-view [role="status"]')).toContain('0 canceled, 1 still finishing');
  // Why and when, for anyone who opens the job later.
  await page.waitForSelector('[data-abort-reason]:not([hidden])');
  expect(await page.textContent('[data-abort-reason]')).toMatch(/^Aborted at .+: aborted by \S+\./);
  // Nothing stops it: the GX finishes its update.
  await page.waitForSelector(`tr[data-device-id="${gx.deviceId}"][data-state="succeeded"]`, {
    timeout: 60_000,
  });
  // Finished well: no phase left in its row (the record keeps its last one, confirming).
  expect(await page.textContent(`tr[data-device-id="${gx.deviceId}"] [data-col="phase"]`)).toBe('–');
  await expectCompleteLog(page, job.id);
  // A reload shows the same notice from the REST snapshot.
  await page.reload();
  await page.waitForSelector('[data-abort-reason]:not([hidden])');
  expect(await page.textContent('[data-abort-reason]')).toMatch(/^Aborted at .+: aborted by \S+\.$/);
  await page.screenshot({ path: path.join(SHOTS, 'portal-job-aborted-laptop.png') });
}, 120_000);

test('an operator uploads an image; the list shows its products, size and SHA-256', async () => {
  const bytes = randomBytes(300 * 1024);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const page = await newPage();
  await signIn(page, h.operatorToken);
  await page.goto(`${h.base}/#/firmware`);
  await page
    .getByLabel('Image file')
    .setInputFiles({ name: 'mppt-v1.69.bin', mimeType: 'application/octet-stream', buffer: bytes });
  await page.getByLabel('Version').fill('v1.69');
  await page.getByLabel('Fits products').fill('0xA058');
  await page.getByLabel('Release notes (optional)').fill('portal upload test');
  await page.click('form[data-form="upload"] button[type="submit"]');
  await page.waitForSelector('form[data-form="upload"] p.ok');
  expect(await page.getAttribute('form[data-form="upload"] progress', 'value')).toBe('100');
  const row = page.locator(`tr[data-firmware-id="${sha256}"]`);
  await row.waitFor();
  const text = await row.textContent();
  expect(text).toContain('v1.69');
  expect(text).toContain('0xA058 SmartSolar MPPT 150/35');
  expect(text).toContain('300 KiB');
  expect(await row.locator('code').textContent()).toBe(`${sha256.slice(0, 12)}…`);
  expect(await row.locator('code').getAttribute('title')).toBe(sha256);
}, 60_000);
