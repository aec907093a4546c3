/**
 * The jobs list: state, firmware, counts, who started it and when; kept live by the retained
 * `fleetflash/jobs/+/status` topics (subscribed before the list is fetched, highest `seq` wins).
 */
import { jobStatusTopic, parseFleetflashTopic, type JobRecord } from '../../../src/protocol/index.js';
import type { AppContext, View } from '../app-context.js';
import {
  errorBox,
  progressBar,
  setBadge,
  stateBadge,
  table,
  tableWrap,
  viewHead,
  type ProgressBar,
} from '../components.js';
import { el, frameBatcher, replaceChildren, setText } from '../dom.js';
import { formatDateTime } from '../format.js';
import { isJobRecord, newer } from '../records.js';
import { jobHref } from '../router.js';

interface Row {
  tr: HTMLTableRowElement;
  state: HTMLSpanElement;
  progress: ProgressBar;
  counts: HTMLTableCellElement;
}

/** `3 succeeded · 1 failed · 2 in progress`, leaving out the zeros. */
export function countsText(job: JobRecord): string {
  const c = job.counts;
  const parts: [number, string][] = [
    [c.succeeded, 'succeeded'],
    [c.failed, 'failed'],
    [c.timed_out, 'timed out'],
    [c.rejected, 'rejected'],
    [c.canceled, 'canceled'],
    [c.in_progress, 'in progress'],
    [c.queued, 'queued'],
  ];
  return (
    parts
      .filter(([n]) => n > 0)
      .map(([n, s]) => `${n} ${s}`)
      .join(' · ') || 'no devices'
  );
}

/** Mounts the jobs list. */
export function jobsView(ctx: AppContext): View {
  const jobs = new Map<string, JobRecord>();
  const rows = new Map<string, Row>();
  const dirty = new Set<string>();
  let closed = false;
  const tbody = el('tbody');
  const status = el('div', {}, el('p', { class: 'muted', text: 'Loading jobs…' }));
  const element = el(
    'section',
    { class: 'view jobs-view' },
    viewHead('Jobs'),
    status,
    tableWrap(
      table(
        'Update jobs, newest first',
        ['Job', 'State', 'Firmware', 'Progress', 'Devices', 'Created by', 'Created at'],
        tbody,
      ),
      'Update jobs',
    ),
  );

  const repaint = frameBatcher(() => {
    const ids = [...jobs.values()]
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id))
      .map((j) => j.id);
    for (const id of ids) {
      let row = rows.get(id);
      if (!row) {
        row = makeRow(jobs.get(id)!);
        rows.set(id, row);
        dirty.add(id);
      }
    }
    for (const id of dirty) paintRow(rows.get(id), jobs.get(id));
    dirty.clear();
    const trs = ids.map((id) => rows.get(id)!.tr);
    const cur = tbody.children;
    if (cur.length !== trs.length || trs.some((tr, i) => cur[i] !== tr)) tbody.replaceChildren(...trs);
    if (!trs.length)
      tbody.replaceChildren(
        el('tr', {}, el('td', { attrs: { colspan: 7 }, class: 'muted', text: 'No jobs yet.' })),
      );
  });

  function apply(job: JobRecord): void {
    if (!newer(jobs.get(job.id), job)) return;
    jobs.set(job.id, job);
    dirty.add(job.id);
    repaint.schedule();
  }

  function makeRow(job: JobRecord): Row {
    const state = stateBadge(job.state);
    const progress = progressBar(`Progress of job ${job.id}`);
    const counts = el('td');
    const tr = el(
      'tr',
      { attrs: { 'data-job-id': job.id } },
      el(
        'th',
        { attrs: { scope: 'row' } },
        el('a', { class: 'mono', attrs: { href: jobHref(job.id) }, text: job.id }),
      ),
      el('td', {}, state),
      el('td', { text: `${job.firmwareName} ${job.firmwareVersion}` }),
      el('td', {}, progress.element),
      counts,
      el('td', { text: job.createdBy }),
      el('td', { class: 'nowrap', text: formatDateTime(job.createdAt) }),
    );
    return { tr, state, progress, counts };
  }

  function paintRow(row: Row | undefined, job: JobRecord | undefined): void {
    if (!row || !job) return;
    setBadge(row.state, job.state);
    row.tr.dataset.state = job.state;
    const c = job.counts;
    const finished = c.succeeded + c.failed + c.timed_out + c.rejected + c.canceled;
    row.progress.set(job.total ? (finished / job.total) * 100 : 0);
    setText(row.counts, `${countsText(job)} (of ${job.total})`);
  }

  const subscription = ctx.live.subscribe(jobStatusTopic('+'), (topic, payload) => {
    const t = parseFleetflashTopic(topic);
    if (t?.kind === 'job-status' && isJobRecord(payload) && payload.id === t.jobId) apply(payload);
  });
  ctx.api.jobs().then(
    (list) => {
      if (closed) return;
      replaceChildren(status);
      for (const j of list) apply(j);
      repaint.schedule();
    },
    (err: unknown) => {
      if (!closed) replaceChildren(status, errorBox(err));
    },
  );

  return {
    element,
    title: 'Jobs',
    close() {
      closed = true;
      subscription.close();
      repaint.cancel();
    },
  };
}
