/**
 * One job, live: overall progress and counts per state (retained `…/status`), a row per device
 * (retained `…/devices/<deviceId>`, the highest `seq` wins), and the log tailing like a build log
 * (`…/events` merged with the REST backlog by {@link JobLogFeed}: no gaps, no duplicates, also
 * after a reload). The page first shows what `GET /api/jobs/:id` says, so a reload shows the state at
 * once, then follows the topics; it never polls the API for live state.
 */
import {
  EXECUTION_STATES,
  isTerminalExecutionState,
  jobTopicPrefix,
  parseFleetflashTopic,
  type ExecutionRecord,
  type JobRecord,
} from '../../../src/protocol/index.js';
import type { AppContext, View } from '../app-context.js';
import {
  describeError,
  errorBox,
  progressBar,
  setBadge,
  stateBadge,
  table,
  tableWrap,
  type ProgressBar,
} from '../components.js';
import { el, frameBatcher, replaceChildren, setAttr, setText } from '../dom.js';
import { describeErrorCode } from '../error-codes.js';
import { formatDateTime, formatDuration, humanize } from '../format.js';
import { JobLogFeed } from '../job-log-feed.js';
import { openAbortDialog } from './abort-dialog.js';
import { logList } from './job-log-list.js';
import { isExecutionRecord, isJobEvent, isJobRecord, newer } from '../records.js';

/** Rows beyond this are summarized, not drawn: the counts above the table still cover every device. */
const ROW_LIMIT = 1000;
/** If the subscription is not acknowledged by then (no broker), the backlog is fetched anyway. */
const BACKLOG_FALLBACK_MS = 1500;

interface Row {
  tr: HTMLTableRowElement;
  state: HTMLSpanElement;
  phase: HTMLTableCellElement;
  progress: ProgressBar;
  versions: HTMLTableCellElement;
  elapsed: HTMLTableCellElement;
  error: HTMLTableCellElement;
}

/** Mounts the page of job `jobId`. */
export function jobView(ctx: AppContext, jobId: string): View {
  let job: JobRecord | null = null;
  const records = new Map<string, ExecutionRecord>();
  const rows = new Map<string, Row>();
  const dirty = new Set<string>();
  let orderChanged = true;
  let closed = false;

  // Header and summary.
  const title = el('h1', {}, 'Job ', el('span', { class: 'mono', text: jobId }));
  const jobState = stateBadge('queued', '…');
  jobState.setAttribute('data-job-state', '');
  const firmware = el('p', { class: 'muted' });
  const abortButton = ctx.canOperate
    ? el('button', { class: 'danger', attrs: { type: 'button', 'data-action': 'abort' }, text: 'Abort job…' })
    : null;
  abortButton?.setAttribute('hidden', '');
  const abortDialog = el('dialog', { class: 'confirm' });
  const overall = progressBar('Overall progress of the job');
  overall.element.classList.add('overall');
  const overallText = el('span', { class: 'muted' });
  const counts = el('ul', { class: 'counts', attrs: { 'aria-label': 'Devices per state' } });
  const countCells = new Map<string, HTMLElement>();
  for (const s of EXECUTION_STATES) {
    const n = el('b', { text: '0' });
    countCells.set(s, n);
    counts.append(el('li', { class: `state-${s}`, attrs: { 'data-count': s } }, `${humanize(s)} `, n));
  }
  const status = el('div');
  // Why and when the job was aborted (by an operator or the rollout's rule), for whoever opens it later.
  const abortNote = el('p', { class: 'warning', attrs: { 'data-abort-reason': '', hidden: '' } });

  // Devices.
  const tbody = el('tbody');
  const grid = table(
    `Devices of job ${jobId}`,
    ['Device', 'State', 'Progress', 'Phase', 'Version', 'Elapsed', 'Error'],
    tbody,
  );
  grid.classList.add('job-table');
  const rowsNote = el('p', { class: 'muted' });

  // Log.
  const log = logList();

  const element = el(
    'section',
    { class: 'view job-view', attrs: { 'data-job-id': jobId } },
    el('div', { class: 'view-head' }, title, jobState, abortButton),
    firmware,
    abortNote,
    status,
    el(
      'div',
      { class: 'summary card' },
      el('div', { class: 'overall-line' }, overall.element, overallText),
      counts,
    ),
    el('h2', { text: 'Devices' }),
    tableWrap(grid, 'Devices of the job'),
    rowsNote,
    el('h2', { text: 'Log' }),
    log.note,
    log.element,
    abortDialog,
  );

  const repaint = frameBatcher(paint);

  function applyJob(candidate: JobRecord): void {
    if (candidate.id !== jobId || !newer(job, candidate)) return;
    job = candidate;
    repaint.schedule();
  }

  function applyExecution(candidate: ExecutionRecord): void {
    if (candidate.jobId !== jobId || !newer(records.get(candidate.deviceId), candidate)) return;
    if (!records.has(candidate.deviceId)) orderChanged = true;
    records.set(candidate.deviceId, candidate);
    dirty.add(candidate.deviceId);
    repaint.schedule();
  }

  // Log lines go straight into the DOM: they arrive in order from the feed and need no diffing.
  const feed = new JobLogFeed({
    fetchPage: (after, limit) => ctx.api.jobEvents(jobId, after, limit),
    onAppend: log.append,
    onError: (err) => setText(log.note, `Could not load the log: ${describeError(err)}`),
  });

  function makeRow(deviceId: string): Row {
    const state = stateBadge('queued');
    const phase = el('td', { attrs: { 'data-col': 'phase' } });
    const progress = progressBar(`Progress of ${deviceId}`);
    const versions = el('td', { class: 'mono nowrap' });
    const elapsed = el('td', { class: 'num nowrap' });
    const error = el('td', { class: 'error-cell' });
    const tr = el(
      'tr',
      { attrs: { 'data-device-id': deviceId } },
      el('th', { class: 'mono', attrs: { scope: 'row' }, text: deviceId }),
      el('td', {}, state),
      // Progress before phase: on a phone the first columns are what fits on screen.
      el('td', {}, progress.element),
      phase,
      versions,
      elapsed,
      error,
    );
    return { tr, state, phase, progress, versions, elapsed, error };
  }

  function paintRow(row: Row, r: ExecutionRecord): void {
    setBadge(row.state, r.state);
    setAttr(row.tr, 'data-state', r.state);
    // Once finished, the phase says something only where it went wrong: the phase a failure or timeout hit.
    const phaseMatters = r.state === 'in_progress' || r.state === 'failed' || r.state === 'timed_out';
    setText(row.phase, phaseMatters ? (r.phase ?? '–') : '–');
    row.progress.set(r.progress);
    setText(row.versions, `${r.fromVersion ?? '?'} → ${r.toVersion}`);
    paintElapsed(row, r);
    if (r.error) {
      const words = describeErrorCode(r.error.code);
      const text = words === r.error.code ? r.error.code : `${r.error.code}: ${words}`;
      if (row.error.dataset.code !== r.error.code || row.error.title !== r.error.message) {
        row.error.dataset.code = r.error.code;
        row.error.title = r.error.message;
        replaceChildren(
          row.error,
          el('span', { text }),
          el('div', { class: 'muted', text: r.error.message }),
        );
      }
    } else if (row.error.dataset.code) {
      delete row.error.dataset.code;
      row.error.title = '';
      replaceChildren(row.error);
    }
  }

  function paintElapsed(row: Row, r: ExecutionRecord): void {
    if (!r.startedAt) return setText(row.elapsed, '–');
    const end = r.finishedAt ? Date.parse(r.finishedAt) : Date.now();
    setText(row.elapsed, formatDuration(end - Date.parse(r.startedAt)));
  }

  function paint(): void {
    if (closed) return;
    if (orderChanged) {
      orderChanged = false;
      const ids = [...records.keys()].sort().slice(0, ROW_LIMIT);
      for (const id of ids) {
        if (!rows.has(id)) {
          rows.set(id, makeRow(id));
          dirty.add(id);
        }
      }
      tbody.replaceChildren(...ids.map((id) => rows.get(id)!.tr));
      setText(
        rowsNote,
        records.size > ROW_LIMIT
          ? `Showing ${ROW_LIMIT} of ${records.size} devices; the counts above cover all of them.`
          : '',
      );
    }
    for (const id of dirty) {
      const row = rows.get(id);
      const r = records.get(id);
      if (row && r) paintRow(row, r);
    }
    dirty.clear();
    paintSummary();
  }

  function paintSummary(): void {
    if (!job) return;
    setBadge(jobState, job.state);
    setText(
      firmware,
      `${job.firmwareName} ${job.firmwareVersion} · ${job.total} device${job.total === 1 ? '' : 's'} · created by ${job.createdBy} at ${formatDateTime(job.createdAt)}${job.finishedAt ? ` · finished ${formatDateTime(job.finishedAt)}` : ''}`,
    );
    for (const [s, cell] of countCells) {
      const n = job.counts[s as keyof JobRecord['counts']] ?? 0;
      setText(cell, String(n));
      cell.parentElement?.toggleAttribute('data-zero', n === 0);
    }
    const finished = EXECUTION_STATES.filter((s) => isTerminalExecutionState(s)).reduce(
      (sum, s) => sum + (job?.counts[s] ?? 0),
      0,
    );
    // With every record at hand the bar follows each device's progress; otherwise finished / total.
    const pct =
      records.size === job.total && job.total > 0
        ? [...records.values()].reduce(
            (sum, r) => sum + (isTerminalExecutionState(r.state) ? 100 : r.progress),
            0,
          ) / job.total
        : job.total > 0
          ? (finished / job.total) * 100
          : 0;
    overall.set(job.state === 'completed' ? 100 : pct);
    setText(overallText, `${finished} of ${job.total} finished`);
    const aborted = job.state === 'aborted';
    abortNote.toggleAttribute('hidden', !aborted);
    if (aborted) {
      const when = job.abortedAt ? ` at ${formatDateTime(job.abortedAt)}` : '';
      const finishing = job.counts.in_progress;
      setText(
        abortNote,
        `Aborted${when}: ${job.abortReason ?? 'no reason recorded'}.` +
          (finishing > 0 ? ` ${finishing} device${finishing === 1 ? ' is' : 's are'} past the point of no return and finishing.` : ''),
      );
    }
    const running = job.state === 'queued' || job.state === 'in_progress';
    abortButton?.toggleAttribute('hidden', !running);
    document.title = `${humanize(job.state)} · job ${jobId} · fleetflash`;
  }

  // Subscribe first; fetch the backlog once the broker acknowledged, so every line is in one or the other.
  let activeOnce = false;
  const subscription = ctx.live.subscribe(
    `${jobTopicPrefix(jobId)}/#`,
    (topic, payload) => {
      const t = parseFleetflashTopic(topic);
      if (!t || !('jobId' in t) || t.jobId !== jobId) return;
      if (t.kind === 'job-status' && isJobRecord(payload)) applyJob(payload);
      else if (t.kind === 'job-device' && isExecutionRecord(payload)) applyExecution(payload);
      else if (t.kind === 'job-events' && isJobEvent(payload) && payload.jobId === jobId) feed.live(payload);
    },
    () => {
      activeOnce = true;
      void feed.catchUp();
    },
  );
  const fallback = setTimeout(() => {
    if (!activeOnce) void feed.catchUp();
  }, BACKLOG_FALLBACK_MS);

  // The current state at once, from the API; the topics bring anything newer.
  ctx.api.job(jobId).then(
    (res) => {
      applyJob(res.job);
      for (const r of res.executions) applyExecution(r);
    },
    (err: unknown) => {
      if (!closed) replaceChildren(status, errorBox(err));
    },
  );

  // Elapsed time of running devices is a clock, not data: a local tick, no requests.
  const tick = setInterval(() => {
    for (const [id, r] of records) {
      const row = rows.get(id);
      if (row && r.startedAt && !r.finishedAt) paintElapsed(row, r);
    }
  }, 1000);

  abortButton?.addEventListener('click', () => confirmAbort());

  function confirmAbort(): void {
    const inFlight = [...records.values()].filter(
      (r) => r.state === 'in_progress' && (r.installAccepted || r.installSentAt),
    ).length;
    openAbortDialog(abortDialog, ctx.api, jobId, inFlight, (res) => {
      applyJob(res.job);
      replaceChildren(
        status,
        el('p', {
          class: 'ok',
          attrs: { role: 'status' },
          text: `Job aborted: ${res.canceled} canceled, ${res.inFlight} still finishing.`,
        }),
      );
    });
  }

  return {
    element,
    title: `Job ${jobId}`,
    close() {
      closed = true;
      subscription.close();
      feed.close();
      repaint.cancel();
      clearTimeout(fallback);
      clearInterval(tick);
    },
  };
}
