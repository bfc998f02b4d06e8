// Jobs (UI-PAGES): the list of jobs with a progress bar of their task
// counts, and the job page with task counts, actions and a task table
// paged by the server (maxresults and $skiptoken: one page in memory, a
// stack of the tokens of the pages before it), filtered by state, result
// and exit code with OData $filter.
import { api, route, live, el, stateBadge, toast, fmtTime, field, navigate } from '../app.js';

const enc = encodeURIComponent;

// ---------- helpers shared by the UI-PAGES pages ----------

// get is a GET through api() that bypasses the browser's HTTP cache: Batch
// GET answers carry Last-Modified without Cache-Control, so the browser
// would otherwise reuse a stale copy (heuristic freshness) on refresh.
export function get(path) {
  return api(path, { headers: { 'Cache-Control': 'no-cache', Pragma: 'no-cache' } });
}

// taskProgress returns the role="progressbar" element of task counts
// {active, running, completed, failed}: aria-valuenow is the percent of
// tasks completed (100 only when all are), the visible text
// "n of m completed".
export function taskProgress(counts, label, jobId) {
  const c = counts || {};
  const done = c.completed || 0;
  const total = (c.active || 0) + (c.running || 0) + done;
  const pct = total ? Math.floor((done * 100) / total) : 0;
  const text = `${done} of ${total} completed`;
  const failed = c.failed || 0;
  return el('div', { class: 'kp-progress-row' },
    el('div', {
      class: 'progress kp-progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100',
      'aria-valuenow': String(pct), 'aria-valuetext': `${pct}%: ${text}`, 'aria-label': label || 'Tasks completed',
      'data-completed': String(done), 'data-total': String(total), 'data-job-id': jobId,
    },
    el('div', { class: 'progress-fill' + (failed ? ' kp-fill-failed' : ''), style: `width:${pct}%` }),
    el('span', { class: 'progress-text' }, text)),
    failed ? el('span', { class: 'kp-failed' }, `${failed} failed`) : null);
}

// confirmButton is a button that asks again in place before acting: its
// click shows the question with "Confirm <label>" and "Cancel" buttons
// (no window.confirm, so keyboard and automation work alike).
export function confirmButton(label, question, action, attrs = {}) {
  const btn = el('button', { type: 'button', class: 'danger', ...attrs }, label);
  btn.addEventListener('click', () => {
    const yes = el('button', { type: 'button', class: 'danger' }, `Confirm ${label.toLowerCase()}`);
    const no = el('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const box = el('span', { class: 'kp-confirm', role: 'group', 'aria-label': question },
      el('span', { role: 'alert' }, question), yes, no);
    no.addEventListener('click', () => { box.replaceWith(btn); btn.focus(); });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      no.disabled = true;
      try { await action(); } catch (e) { toast(e.message || String(e), 'error'); }
      if (box.isConnected) { box.replaceWith(btn); btn.focus(); }
    });
    btn.replaceWith(box);
    yes.focus();
  });
  return btn;
}

// skipToken extracts $skiptoken from an odata.nextLink.
export function skipToken(nextLink) {
  if (!nextLink) return '';
  try { return new URL(nextLink, location.href).searchParams.get('$skiptoken') || ''; } catch { return ''; }
}

// gridTable returns a table in the dashboard's style ({wrap, tbody}); cell
// labels (data-label) let it stack on a phone.
export function gridTable(caption, titles) {
  const tbody = el('tbody');
  const t = el('table', { class: 'grid stack' },
    el('caption', { class: caption.visible ? '' : 'kp-sr' }, caption.text || caption),
    el('thead', {}, el('tr', {}, ...titles.map((n) => el('th', { scope: 'col' }, n)))), tbody);
  return { wrap: el('div', { class: 'table-wrap' }, t), tbody, titles };
}

// row builds a <tr> whose cells carry the column titles as data-label.
export function row(titles, ...cells) {
  return el('tr', {}, ...cells.map((c, i) => el('td', { 'data-label': titles[i] || '' }, c ?? '')));
}

// keyedRows updates tbody in place: rows are keyed, and rebuilt only when
// their data changed, so focus, selection and scrolling survive live
// refreshes. empty is the text of the single row shown without items.
export function keyedRows(tbody, titles, items, key, render, empty) {
  if (!items.length) {
    const msg = empty || 'Nothing here yet.';
    const cur = tbody.firstElementChild;
    if (!(tbody.children.length === 1 && cur.classList.contains('empty') && cur.textContent === msg)) {
      tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: String(titles.length) }, msg)));
    }
    return;
  }
  const old = new Map();
  for (const tr of Array.from(tbody.children)) if (tr.dataset.key !== undefined) old.set(tr.dataset.key, tr);
  const rows = items.map((it) => {
    const k = String(key(it));
    const sig = JSON.stringify(it);
    const prev = old.get(k);
    if (prev && prev.dataset.sig === sig) return prev;
    const tr = render(it);
    tr.dataset.key = k;
    tr.dataset.sig = sig;
    if (prev && prev.contains(document.activeElement)) {
      const i = Array.from(prev.querySelectorAll('a,button,input,select')).indexOf(document.activeElement);
      queueMicrotask(() => { const f = tr.querySelectorAll('a,button,input,select')[i]; if (f) f.focus(); });
    }
    return tr;
  });
  for (const tr of Array.from(tbody.children)) if (!rows.includes(tr)) tr.remove();
  rows.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
}

// props fills a <dl class="kv"> with [label, value] pairs, skipping empty
// values.
export function props(dl, pairs) {
  dl.replaceChildren(...pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v instanceof Node ? v : String(v))]));
  return dl;
}

// wallClock shows Azure's "no limit" duration (TimeSpan.MaxValue) as
// unlimited.
export function wallClock(d) {
  return d && /^P10675199D/.test(d) ? 'unlimited' : d;
}

// actionButton runs fn on click (disabled meanwhile), toasts a failure
// (success shows in the state the page refreshes) and then calls after().
export function actionButton(label, fn, after, attrs = {}) {
  const b = el('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await fn(); } catch (e) { toast(e.message || String(e), 'error'); }
    b.disabled = false;
    if (after) after();
  });
  return b;
}

// cursorPager keeps server paging state: the token of the current page,
// the tokens of the pages before it and the next page's token.
export function cursorPager(label, onChange) {
  const prev = el('button', { type: 'button', class: 'secondary', disabled: true }, 'Previous page');
  const next = el('button', { type: 'button', class: 'secondary', disabled: true }, 'Next page');
  const status = el('span', { class: 'pager-status', 'aria-live': 'polite' });
  const p = {
    token: '', nextToken: '', stack: [],
    el: el('nav', { class: 'pager', 'aria-label': label }, prev, status, next),
    reset() { p.token = ''; p.nextToken = ''; p.stack = []; },
    // update records the answer of the current page.
    update(page, count) {
      p.nextToken = skipToken(page && page['odata.nextLink']);
      next.disabled = !p.nextToken;
      prev.disabled = p.stack.length === 0;
      status.textContent = `Page ${p.stack.length + 1}` + (count ? ` · ${count} shown` : '');
    },
  };
  next.addEventListener('click', () => { if (!p.nextToken) return; p.stack.push(p.token); p.token = p.nextToken; onChange(); });
  prev.addEventListener('click', () => { if (!p.stack.length) return; p.token = p.stack.pop(); onChange(); });
  return p;
}

// ---------- jobs list ----------

const JOB_STATES = ['active', 'disabling', 'disabled', 'enabling', 'terminating', 'completed', 'deleting'];
const countsCache = new Map(); // jobId -> task counts of a completed job (final)

async function jobCounts(job) {
  const k = job.id + '\u0000' + (job.creationTime || '');
  if (job.state === 'completed' && countsCache.has(k)) return countsCache.get(k);
  const r = await get(`/jobs/${enc(job.id)}/taskcounts`);
  const c = (r && r.taskCounts) || {};
  if (job.state === 'completed') countsCache.set(k, c);
  return c;
}

function renderJobs(root, params, query) {
  const { wrap, tbody, titles } = gridTable('Jobs', ['Job', 'State', 'Pool', 'Tasks', 'Created']);
  const stateSel = el('select', { id: 'kp-job-state' },
    el('option', { value: '' }, 'any'), ...JOB_STATES.map((s) => el('option', { value: s }, s)));
  if (JOB_STATES.includes(query.get('state'))) stateSel.value = query.get('state');
  const pager = cursorPager('Job pages', () => refresh());
  root.append(
    el('h1', {}, 'Jobs'),
    el('div', { class: 'toolbar' }, el('label', { class: 'field' }, el('span', { class: 'field-label' }, 'Job state'), stateSel)),
    wrap, pager.el, createJobForm());
  stateSel.addEventListener('change', () => { pager.reset(); refresh(); });

  function currentQuery() {
    const q = new URLSearchParams({ maxresults: '50' });
    if (stateSel.value) q.set('$filter', `state eq '${stateSel.value}'`);
    if (pager.token) q.set('$skiptoken', pager.token);
    return q.toString();
  }
  async function load() {
    const q = currentQuery();
    const r = await get(`/jobs?${q}`);
    const jobs = (r && r.value) || [];
    const counts = await Promise.all(jobs.map((j) => jobCounts(j).catch(() => null)));
    if (q !== currentQuery()) return; // paged or filtered meanwhile: a newer load follows
    const items = jobs.map((j, i) => ({
      id: j.id, state: j.state, created: j.creationTime, counts: counts[i],
      pool: (j.poolInfo && j.poolInfo.poolId) || (j.executionInfo && j.executionInfo.poolId) || '',
    }));
    keyedRows(tbody, titles, items, (j) => j.id, (j) => row(titles,
      el('a', { href: `#/jobs/${enc(j.id)}` }, j.id),
      stateBadge(j.state),
      j.pool ? el('a', { href: `#/pools/${enc(j.pool)}` }, j.pool) : '',
      j.counts ? taskProgress(j.counts, `Tasks completed in job ${j.id}`, j.id) : 'unknown',
      fmtTime(j.created)), stateSel.value ? `No ${stateSel.value} jobs.` : 'No jobs yet.');
    pager.update(r, jobs.length);
  }
  const handle = live(load, 3000);
  function refresh() { handle.refresh(); }
}

// createJobForm: a job on a pool (Azure's Job - Add, the most used
// fields); on success the browser goes to the new job's page.
function createJobForm() {
  const id = el('input', { required: true, spellcheck: 'false', autocapitalize: 'none', maxlength: 64, pattern: '[A-Za-z0-9_\\-]+', autocomplete: 'off' });
  const pool = el('input', { required: true, spellcheck: 'false', autocapitalize: 'none', list: 'kp-pool-ids', autocomplete: 'off' });
  const pools = el('datalist', { id: 'kp-pool-ids' });
  const onDone = el('select', {}, el('option', { value: 'noaction' }, 'keep the job active'), el('option', { value: 'terminatejob' }, 'terminate the job'));
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const submit = el('button', { type: 'submit' }, 'Create job');
  const form = el('form', { class: 'toolbar', 'aria-label': 'Create a job' },
    field('Job ID', id), field('Pool ID', pool), field('When all tasks complete', onDone), submit, pools);
  // Offer the account's pools (once; the input also takes any ID).
  get('/pools?$select=id&maxresults=1000').then((r) => {
    const ids = ((r && r.value) || []).map((p) => p.id);
    pools.replaceChildren(...ids.map((v) => el('option', { value: v })));
    if (ids.length === 1 && !pool.value) pool.value = ids[0];
  }).catch(() => {});
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const body = { id: id.value.trim(), poolInfo: { poolId: pool.value.trim() }, onAllTasksComplete: onDone.value };
    submit.disabled = true;
    try {
      await api('/jobs', { method: 'POST', body });
      toast(`Job ${body.id} created`);
      navigate(`/jobs/${enc(body.id)}`);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return el('section', { class: 'card', 'aria-labelledby': 'kp-new-job' }, el('h2', { id: 'kp-new-job' }, 'Create a job'), form, err);
}

// addTaskForm: a task of jobId (Azure's Task - Add: ID, command line,
// retries); on success the browser goes to the task's page, where its
// output streams in.
function addTaskForm(jobId) {
  const id = el('input', { required: true, spellcheck: 'false', autocapitalize: 'none', maxlength: 64, pattern: '[A-Za-z0-9_\\-]+', autocomplete: 'off' });
  const cmd = el('input', { required: true, spellcheck: 'false', autocapitalize: 'none', size: 48, autocomplete: 'off', placeholder: "/bin/sh -c 'echo hello'" });
  const retries = el('input', { type: 'number', min: -1, step: 1, value: 0, inputmode: 'numeric' });
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const submit = el('button', { type: 'submit' }, 'Add task');
  const newId = () => 'task-' + new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14);
  id.value = newId();
  const form = el('form', { class: 'toolbar', 'aria-label': 'Add a task' },
    field('Task ID', id), field('Command line', cmd, 'not run in a shell: use /bin/sh -c \'...\' for pipes and variables'),
    field('Max retries', retries), submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const body = { id: id.value.trim(), commandLine: cmd.value, constraints: { maxTaskRetryCount: Number(retries.value || 0) } };
    submit.disabled = true;
    try {
      await api(`/jobs/${enc(jobId)}/tasks`, { method: 'POST', body });
      toast(`Task ${body.id} added`);
      navigate(`/jobs/${enc(jobId)}/tasks/${enc(body.id)}`);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return el('details', { class: 'card kp-addtask' }, el('summary', {}, el('h2', { class: 'kp-summary-h' }, 'Add a task')), form, err);
}

// ---------- job page ----------

const TASK_STATES = ['active', 'preparing', 'running', 'completed'];

function renderJob(root, params, query) {
  const jobId = params.id;
  const base = `/jobs/${enc(jobId)}`;
  const addTask = addTaskForm(jobId);
  let addTaskDecided = false;
  const head = el('div', { class: 'kp-head' },
    el('p', { class: 'kp-crumbs' }, el('a', { href: '#/jobs' }, 'Jobs'), ' / ', jobId),
    el('h1', {}, 'Job ', el('span', { class: 'kp-id' }, jobId)));
  const stateLine = el('p', { class: 'kp-stateline' });
  const info = el('dl', { class: 'kv' });
  const countsBox = el('div', { class: 'kp-counts' });
  const actions = el('div', { class: 'toolbar kp-actions', role: 'group', 'aria-label': 'Job actions' });

  // Task table: filters, the current page and its cursors.
  const stateSel = el('select', { name: 'state' },
    el('option', { value: '' }, 'any'), ...TASK_STATES.map((s) => el('option', { value: s }, s)));
  const resultSel = el('select', { name: 'result' },
    el('option', { value: '' }, 'any'), el('option', { value: 'success' }, 'success'), el('option', { value: 'failure' }, 'failure'));
  const exitInput = el('input', { name: 'exitCode', type: 'text', inputmode: 'numeric', pattern: '-?[0-9]+', size: '6', autocomplete: 'off' });
  const sizeSel = el('select', { name: 'pageSize' }, ...['25', '50', '100', '250'].map((n) => el('option', { value: n }, n)));
  sizeSel.value = '50';
  if (TASK_STATES.includes(query.get('state'))) stateSel.value = query.get('state');
  if (['success', 'failure'].includes(query.get('result'))) resultSel.value = query.get('result');
  if (/^-?\d+$/.test(query.get('exitCode') || '')) exitInput.value = query.get('exitCode');
  const lab = (text, input) => el('label', { class: 'field' }, el('span', { class: 'field-label' }, text), input);
  const filterForm = el('form', { class: 'toolbar kp-filters', role: 'search', 'aria-label': 'Filter tasks' },
    lab('Task state', stateSel), lab('Result', resultSel), lab('Exit code', exitInput), lab('Tasks per page', sizeSel),
    el('button', { type: 'submit' }, 'Apply filter'),
    el('button', { type: 'reset', class: 'secondary' }, 'Clear filter'));
  const filterError = el('p', { class: 'error', role: 'alert', hidden: true });
  const { wrap, tbody, titles } = gridTable('Tasks', ['Task', 'State', 'Exit code', 'Node', 'Retries', 'Started', 'Ended']);
  const pager = cursorPager('Task pages', () => loadNow());
  let filter = buildFilter() || '';

  root.append(head, stateLine, actions, info,
    el('h2', {}, 'Task counts'), countsBox, addTask,
    el('h2', { id: 'kp-tasks-h' }, 'Tasks'), filterForm, filterError, wrap, pager.el);

  function buildFilter() {
    const parts = [];
    if (stateSel.value) parts.push(`state eq '${stateSel.value}'`);
    if (resultSel.value) parts.push(`executionInfo/result eq '${resultSel.value}'`);
    const x = exitInput.value.trim();
    if (x !== '') {
      if (!/^-?\d+$/.test(x)) return null;
      // Azure sets exitCode only on completed tasks; saying so lets the
      // server narrow the scan with its state index.
      if (!stateSel.value) parts.unshift(`state eq 'completed'`);
      parts.push(`executionInfo/exitCode eq ${Number(x)}`);
    }
    return parts.join(' and ');
  }
  filterForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = buildFilter();
    if (f === null) {
      filterError.textContent = 'The exit code is a whole number, such as 0 or 1.';
      filterError.hidden = false;
      exitInput.focus();
      return;
    }
    filterError.hidden = true;
    filter = f;
    pager.reset();
    loadNow();
  });
  filterForm.addEventListener('reset', () => {
    setTimeout(() => { sizeSel.value = '50'; filterError.hidden = true; filter = ''; pager.reset(); loadNow(); });
  });
  sizeSel.addEventListener('change', () => { pager.reset(); loadNow(); });

  // A slow page (a filter the server answers by scanning) is refreshed
  // less often: live runs wait five times the last load's duration, while
  // paging and filtering (force) always load.
  let lastStart = 0, lastTook = 0, force = true;
  const loadNow = () => { force = true; tasksHandle.refresh(); };
  async function loadTasks() {
    const now = Date.now();
    if (!force && lastTook > 500 && now - lastStart < 5 * lastTook) return;
    force = false;
    lastStart = now;
    await loadTasksPage();
    lastTook = Date.now() - now;
  }
  function currentQuery() {
    const q = new URLSearchParams({ maxresults: sizeSel.value, $select: 'id,displayName,state,executionInfo,nodeInfo' });
    if (filter) q.set('$filter', filter);
    if (pager.token) q.set('$skiptoken', pager.token);
    return q;
  }
  async function loadTasksPage() {
    const q = currentQuery();
    const r = await get(`${base}/tasks?${q}`);
    if (q.toString() !== currentQuery().toString()) return; // paged or filtered meanwhile: a newer load follows
    const tasks = (r && r.value) || [];
    keyedRows(tbody, titles, tasks, (t) => t.id, (t) => {
      const x = t.executionInfo || {};
      const n = t.nodeInfo || {};
      return row(titles,
        el('a', { href: `#/jobs/${enc(jobId)}/tasks/${enc(t.id)}` }, t.id),
        stateBadge(t.state),
        x.exitCode === undefined || x.exitCode === null ? '' : String(x.exitCode),
        n.poolId ? el('a', { href: `#/pools/${enc(n.poolId)}`, title: `Pool ${n.poolId}` }, n.nodeId || n.poolId) : (n.nodeId || ''),
        String(x.retryCount || 0),
        fmtTime(x.startTime),
        fmtTime(x.endTime));
    }, filter ? 'No tasks match the filter.' : 'No tasks yet.');
    pager.update(r, tasks.length);
  }

  const disableOpt = el('select', { name: 'disableTasks' },
    el('option', { value: 'requeue' }, 'requeue'), el('option', { value: 'terminate' }, 'terminate'), el('option', { value: 'wait' }, 'wait'));
  const after = () => { jobHandle.refresh(); loadNow(); };
  const terminateBtn = actionButton('Terminate', () => api(`${base}/terminate`, { method: 'POST', body: { terminateReason: 'UserTerminate' } }), after);
  const disableBtn = actionButton('Disable', () => api(`${base}/disable`, { method: 'POST', body: { disableTasks: disableOpt.value } }), after);
  const enableBtn = actionButton('Enable', () => api(`${base}/enable`, { method: 'POST' }), after);
  const deleteBtn = confirmButton('Delete', `Delete job ${jobId} and all its tasks?`, async () => {
    await api(base, { method: 'DELETE' });
    toast(`Job ${jobId} is being deleted`);
    location.hash = '#/jobs';
  });
  actions.append(terminateBtn,
    el('span', { class: 'kp-inline' }, disableBtn, lab('Disable tasks option', disableOpt)),
    enableBtn, deleteBtn);

  async function loadJob() {
    const job = await get(base);
    const x = job.executionInfo || {};
    const pool = (job.poolInfo && job.poolInfo.poolId) || x.poolId || '';
    stateLine.replaceChildren('State: ', stateBadge(job.state),
      job.previousState ? el('span', { class: 'muted' }, ` (was ${job.previousState}; since ${fmtTime(job.stateTransitionTime)})`) : '');
    props(info, [
      ['Display name', job.displayName],
      ['Pool', pool ? el('a', { href: `#/pools/${enc(pool)}` }, pool) : (job.poolInfo && job.poolInfo.autoPoolSpecification ? 'auto pool' : '')],
      ['Priority', job.priority],
      ['Created', fmtTime(job.creationTime)],
      ['Started', fmtTime(x.startTime)],
      ['Ended', fmtTime(x.endTime)],
      ['Terminate reason', x.terminateReason],
      ['Scheduling error', x.schedulingError ? `${x.schedulingError.code}: ${x.schedulingError.message || ''}` : ''],
      ['When all tasks complete', job.onAllTasksComplete],
      ['When a task fails', job.onTaskFailure],
      ['Max task retries', job.constraints && job.constraints.maxTaskRetryCount],
      ['Max wall clock', wallClock(job.constraints && job.constraints.maxWallClockTime)],
    ]);
    const s = job.state;
    terminateBtn.disabled = !['active', 'disabled', 'disabling', 'enabling'].includes(s);
    disableBtn.disabled = s !== 'active';
    enableBtn.disabled = s !== 'disabled';
    const c = await get(`${base}/taskcounts`);
    const tc = (c && c.taskCounts) || {};
    if (!addTaskDecided) { // open "Add a task" on a job without tasks
      addTaskDecided = true;
      if (!((tc.active || 0) + (tc.running || 0) + (tc.completed || 0)) && ['active', 'disabled'].includes(s)) addTask.open = true;
    }
    countsBox.replaceChildren(taskProgress(tc, `Tasks completed in job ${jobId}`, jobId),
      el('ul', { class: 'kp-countlist' },
        ...['active', 'running', 'completed', 'succeeded', 'failed'].map((k) =>
          el('li', {}, el('span', { class: 'kp-countnum' }, String(tc[k] || 0)), ' ', k))));
  }
  const jobHandle = live(loadJob, 3000);
  const tasksHandle = live(loadTasks, 3000);
}

route('/jobs', renderJobs);
route('/jobs/:id', renderJob);
