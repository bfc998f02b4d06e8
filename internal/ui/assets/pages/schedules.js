// Job schedules (UI-PAGES): the list and a schedule's page (state,
// schedule, job specification summary, recent job and the schedule's jobs)
// with disable, enable, terminate and delete.
import { api, route, live, el, stateBadge, toast, fmtTime } from '../app.js';
import { confirmButton, keyedRows, gridTable, row, props, actionButton, cursorPager, get } from './jobs.js';

const enc = encodeURIComponent;

function recurrence(s) {
  return s && s.recurrenceInterval ? `every ${s.recurrenceInterval}` : 'once';
}

function recentJobLink(js) {
  const r = js.executionInfo && js.executionInfo.recentJob;
  return r && r.id ? el('a', { href: `#/jobs/${enc(r.id)}` }, r.id) : '';
}

function renderSchedules(root) {
  const t = gridTable('Job schedules', ['Schedule', 'State', 'Recurrence', 'Next run', 'Recent job', 'Pool']);
  const pager = cursorPager('Job schedule pages', () => handle.refresh());
  root.append(el('h1', {}, 'Job schedules'), t.wrap, pager.el);
  async function load() {
    const q = new URLSearchParams({ maxresults: '100' });
    if (pager.token) q.set('$skiptoken', pager.token);
    const r = await get(`/jobschedules?${q}`);
    const items = (r && r.value) || [];
    keyedRows(t.tbody, t.titles, items, (s) => s.id, (s) => {
      const spec = s.jobSpecification || {};
      const pool = spec.poolInfo && spec.poolInfo.poolId;
      return row(t.titles,
        el('a', { href: `#/schedules/${enc(s.id)}` }, s.id),
        stateBadge(s.state),
        recurrence(s.schedule),
        fmtTime(s.executionInfo && s.executionInfo.nextRunTime),
        recentJobLink(s),
        pool ? el('a', { href: `#/pools/${enc(pool)}` }, pool) : (spec.poolInfo && spec.poolInfo.autoPoolSpecification ? 'auto pool' : ''));
    }, 'No job schedules yet.');
    pager.update(r, items.length);
  }
  const handle = live(load, 5000);
}

function renderSchedule(root, params) {
  const id = params.id;
  const base = `/jobschedules/${enc(id)}`;
  const stateLine = el('p', { class: 'kp-stateline' });
  const actions = el('div', { class: 'toolbar kp-actions', role: 'group', 'aria-label': 'Job schedule actions' });
  const info = el('dl', { class: 'kv' });
  const sched = el('dl', { class: 'kv' });
  const spec = el('dl', { class: 'kv' });
  const jobs = gridTable('Jobs of the schedule', ['Job', 'State', 'Created']);
  const card = (title, ...body) => el('section', { class: 'card' }, el('h2', {}, title), ...body);
  root.append(
    el('p', { class: 'kp-crumbs' }, el('a', { href: '#/schedules' }, 'Job schedules'), ' / ', id),
    el('h1', {}, 'Job schedule ', el('span', { class: 'kp-id' }, id)),
    stateLine, actions,
    el('div', { class: 'kp-grid' }, card('Overview', info), card('Schedule', sched), card('Job specification', spec)),
    el('h2', {}, 'Jobs'), jobs.wrap);

  const after = () => handle.refresh();
  const disableBtn = actionButton('Disable', () => api(`${base}/disable`, { method: 'POST' }), after);
  const enableBtn = actionButton('Enable', () => api(`${base}/enable`, { method: 'POST' }), after);
  const terminateBtn = actionButton('Terminate', () => api(`${base}/terminate`, { method: 'POST' }), after);
  const deleteBtn = confirmButton('Delete', `Delete job schedule ${id} and its jobs?`, async () => {
    await api(base, { method: 'DELETE' });
    toast(`Job schedule ${id} is being deleted`);
    location.hash = '#/schedules';
  });
  actions.append(disableBtn, enableBtn, terminateBtn, deleteBtn);

  async function load() {
    const s = await get(base);
    const x = s.executionInfo || {};
    const sc = s.schedule || {};
    const js = s.jobSpecification || {};
    stateLine.replaceChildren('State: ', stateBadge(s.state),
      s.previousState ? el('span', { class: 'muted' }, ` (was ${s.previousState}; since ${fmtTime(s.stateTransitionTime)})`) : '');
    props(info, [
      ['Display name', s.displayName],
      ['Created', fmtTime(s.creationTime)],
      ['Recent job', recentJobLink(s)],
      ['Next run', fmtTime(x.nextRunTime)],
      ['Ended', fmtTime(x.endTime)],
    ]);
    props(sched, [
      ['Recurrence', recurrence(sc)],
      ['Do not run until', fmtTime(sc.doNotRunUntil)],
      ['Do not run after', fmtTime(sc.doNotRunAfter)],
      ['Start window', sc.startWindow],
    ]);
    const pool = js.poolInfo && js.poolInfo.poolId;
    props(spec, [
      ['Pool', pool ? el('a', { href: `#/pools/${enc(pool)}` }, pool) : (js.poolInfo && js.poolInfo.autoPoolSpecification ? 'auto pool' : '')],
      ['Priority', js.priority],
      ['Job manager', js.jobManagerTask ? `${js.jobManagerTask.id}: ${js.jobManagerTask.commandLine}` : ''],
      ['Preparation task', js.jobPreparationTask && js.jobPreparationTask.commandLine],
      ['Release task', js.jobReleaseTask && js.jobReleaseTask.commandLine],
      ['When all tasks complete', js.onAllTasksComplete],
      ['When a task fails', js.onTaskFailure],
      ['Max task retries', js.constraints && js.constraints.maxTaskRetryCount],
    ]);
    disableBtn.disabled = s.state !== 'active';
    enableBtn.disabled = s.state !== 'disabled';
    terminateBtn.disabled = !['active', 'disabled'].includes(s.state);
    const r = await get(`${base}/jobs?maxresults=50`);
    keyedRows(jobs.tbody, jobs.titles, (r && r.value) || [], (j) => j.id, (j) => row(jobs.titles,
      el('a', { href: `#/jobs/${enc(j.id)}` }, j.id), stateBadge(j.state), fmtTime(j.creationTime)), 'No jobs yet.');
  }
  const handle = live(load, 5000);
}

route('/schedules', renderSchedules);
route('/schedules/:id', renderSchedule);
