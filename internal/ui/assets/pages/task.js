// Task page (UI-PAGES): command line, state history, execution and failure
// information, constraints, the node it ran on, stdout and stderr tailed
// live from /ui/tail (server-sent events) and its files with downloads.
import { api, route, live, onLeave, el, stateBadge, toast, fmtTime, fmtBytes, fmtDuration, download, API_VERSION } from '../app.js';
import { confirmButton, keyedRows, gridTable, row, props, actionButton, wallClock, get } from './jobs.js';

const enc = encodeURIComponent;
const encPath = (p) => p.split('/').map(enc).join('/');
const utf8 = new TextEncoder();

// tail streams a task file into pre through /ui/tail: "chunk" events
// {offset, text} (offset in bytes), "end" once the task completed and the
// file was fully sent, "failure" {message}. A reconnecting EventSource
// resumes at Last-Event-ID; chunks before what is shown are dropped;
// "reset" starts over (a retried task's new output file).
// Returns a function that stops the stream.
function tail(jobId, taskId, file, pre, statusEl) {
  let next = 0; // byte offset after the text shown
  let ended = false;
  const es = new EventSource(`/ui/tail?job=${enc(jobId)}&task=${enc(taskId)}&file=${enc(file)}`);
  statusEl.textContent = 'waiting for output';
  es.addEventListener('open', () => { if (!ended) statusEl.textContent = 'live'; });
  es.addEventListener('chunk', (ev) => {
    let d;
    try { d = JSON.parse(ev.data); } catch { return; }
    const off = Number(d.offset) || 0;
    const text = d.text || '';
    if (off < next) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.append(document.createTextNode(text));
    next = off + utf8.encode(text).length;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
    statusEl.textContent = 'live';
  });
  // A retried task writes a new file: the server says "reset" and streams
  // the new attempt's output from offset 0.
  es.addEventListener('reset', () => {
    pre.textContent = '';
    next = 0;
  });
  es.addEventListener('end', () => {
    ended = true;
    es.close();
    statusEl.textContent = next ? 'complete' : 'complete, empty';
    pre.dataset.complete = 'true';
  });
  es.addEventListener('failure', (ev) => {
    ended = true;
    es.close();
    let msg = '';
    try { msg = JSON.parse(ev.data).message; } catch { /* default below */ }
    statusEl.textContent = msg || 'not available';
  });
  es.addEventListener('error', () => {
    if (ended) return;
    statusEl.textContent = es.readyState === EventSource.CLOSED ? 'not available' : 'reconnecting';
  });
  return () => { ended = true; es.close(); };
}

// downloadLink is a Download link to a file through /ui/api. /ui/api
// wants the X-Kiln-UI header on every request, which a navigation cannot
// send, so a plain click fetches the file with the header and saves it
// (app.js download); the href stays the file's real URL for the day the
// proxy serves file GETs without the header.
function downloadLink(apiPath, name) {
  const leaf = name.split('/').pop();
  const a = el('a', { href: `/ui/api${apiPath}?api-version=${API_VERSION}`, download: leaf, class: 'button secondary', 'aria-label': `Download ${name}` }, 'Download');
  a.addEventListener('click', async (ev) => {
    if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    try { await download(apiPath, leaf); } catch (e) { toast(e.message || String(e), 'error'); }
  });
  return a;
}

function renderTask(root, params) {
  const jobId = params.id;
  const taskId = params.taskId;
  const base = `/jobs/${enc(jobId)}/tasks/${enc(taskId)}`;
  const stateLine = el('p', { class: 'kp-stateline' });
  const actions = el('div', { class: 'toolbar kp-actions', role: 'group', 'aria-label': 'Task actions' });
  const cmd = el('pre', { class: 'kp-cmd', 'data-testid': 'command-line' });
  const general = el('dl', { class: 'kv' });
  const history = el('ol', { class: 'kp-history' });
  const exec = el('dl', { class: 'kv' });
  const failure = el('div', { class: 'kp-failure' });
  const constraints = el('dl', { class: 'kv' });
  const node = el('dl', { class: 'kv' });
  const outs = [];
  const outBox = (name, file) => {
    const pre = el('pre', { class: 'kp-log', 'data-testid': name, tabindex: '0', 'aria-labelledby': `kp-h-${name}` });
    const st = el('span', { class: 'kp-tailstatus', 'data-testid': `${name}-status`, 'aria-live': 'polite' });
    outs.push({ pre, st, file });
    return el('section', { class: 'kp-logbox' }, el('h2', { id: `kp-h-${name}` }, name, ' ', st), pre);
  };
  const files = gridTable('Task files', ['Name', 'Size', 'Modified', 'Download']);
  const card = (title, ...body) => el('section', { class: 'card' }, el('h2', {}, title), ...body);

  root.append(
    el('p', { class: 'kp-crumbs' }, el('a', { href: '#/jobs' }, 'Jobs'), ' / ',
      el('a', { href: `#/jobs/${enc(jobId)}` }, jobId), ' / ', taskId),
    el('h1', {}, 'Task ', el('span', { class: 'kp-id' }, taskId)),
    stateLine, actions,
    el('h2', {}, 'Command line'), cmd,
    el('div', { class: 'kp-grid' },
      card('General', general),
      card('State history', history),
      card('Execution', exec, failure),
      card('Constraints and retries', constraints),
      card('Node', node)),
    outBox('stdout', 'stdout.txt'), outBox('stderr', 'stderr.txt'),
    el('h2', {}, 'Files'), files.wrap);

  let handle = null;
  const after = () => handle && handle.refresh();
  const terminateBtn = actionButton('Terminate', () => api(`${base}/terminate`, { method: 'POST' }), after);
  const reactivateBtn = actionButton('Reactivate', () => api(`${base}/reactivate`, { method: 'POST' }), after);
  const deleteBtn = confirmButton('Delete', `Delete task ${taskId}?`, async () => {
    await api(base, { method: 'DELETE' });
    toast(`Task ${taskId} deleted`);
    location.hash = `#/jobs/${enc(jobId)}`;
  });
  actions.append(terminateBtn, reactivateBtn, deleteBtn);

  // The streams start at once: /ui/tail waits for a task not yet started.
  const stops = outs.map((o) => tail(jobId, taskId, o.file, o.pre, o.st));
  onLeave(() => stops.forEach((s) => s()));

  async function loadTask() {
    const t = await get(base);
    const x = t.executionInfo || {};
    const n = t.nodeInfo || {};
    const c = t.constraints || {};
    stateLine.replaceChildren('State: ', stateBadge(t.state),
      ...(x.result ? [' result: ', stateBadge(x.result)] : []));
    if (cmd.textContent !== (t.commandLine || '')) cmd.textContent = t.commandLine || '';
    props(general, [
      ['Display name', t.displayName],
      ['Created', fmtTime(t.creationTime)],
      ['Required slots', t.requiredSlots],
      ['Depends on', t.dependsOn && t.dependsOn.taskIds ? t.dependsOn.taskIds.join(', ') : ''],
      ['Multi-instance', t.multiInstanceSettings ? `${t.multiInstanceSettings.numberOfInstances} instances` : ''],
    ]);
    // What the API keeps of the history: creation, the previous state and
    // the current one, and start and end of the last run.
    const h = [['created', t.creationTime]];
    if (x.startTime) h.push(['started running', x.startTime]);
    if (t.previousState) h.push([`left ${t.previousState}`, t.previousStateTransitionTime]);
    h.push([`${t.state} (current state)`, t.stateTransitionTime]);
    if (x.endTime) h.push(['ended', x.endTime]);
    h.sort((a, b) => (a[1] && b[1] ? new Date(a[1]) - new Date(b[1]) : 0));
    const hs = JSON.stringify(h);
    if (history.dataset.sig !== hs) {
      history.dataset.sig = hs;
      history.replaceChildren(...h.map(([s, at]) => el('li', {}, el('span', { class: 'kp-hstate' }, s), at ? ` at ${fmtTime(at)}` : '')));
    }
    const run = x.startTime ? fmtDuration((x.endTime ? new Date(x.endTime) : new Date()) - new Date(x.startTime)) : '';
    props(exec, [
      ['Result', x.result ? stateBadge(x.result) : ''],
      ['Exit code', x.exitCode],
      ['Started', fmtTime(x.startTime)],
      ['Ended', fmtTime(x.endTime)],
      ['Run time', run && !x.endTime ? `${run} so far` : run],
      ['Retries', x.retryCount ?? 0],
      ['Last retry', fmtTime(x.lastRetryTime)],
      ['Requeues', x.requeueCount ?? 0],
      ['Last requeue', fmtTime(x.lastRequeueTime)],
      ['Container', x.containerInfo && x.containerInfo.containerId],
    ]);
    const f = x.failureInfo;
    if (f) {
      failure.replaceChildren(el('h3', {}, 'Failure'), props(el('dl', { class: 'kv' }), [
        ['Category', f.category], ['Code', f.code], ['Message', f.message],
        ...(f.details || []).map((d) => [`Detail ${d.name || ''}`, d.value || '']),
      ]));
    } else failure.replaceChildren();
    props(constraints, [
      ['Max retries', c.maxTaskRetryCount === -1 ? 'unlimited' : (c.maxTaskRetryCount ?? 0)],
      ['Retries so far', x.retryCount ?? 0],
      ['Max wall clock', wallClock(c.maxWallClockTime)],
      ['Retention', c.retentionTime],
    ]);
    props(node, [
      ['Pool', n.poolId ? el('a', { href: `#/pools/${enc(n.poolId)}` }, n.poolId) : ''],
      ['Node', n.nodeId ? (n.poolId ? el('a', { href: `#/pools/${enc(n.poolId)}`, title: `Pool ${n.poolId}` }, n.nodeId) : n.nodeId) : 'not run yet'],
      ['Task directory', n.taskRootDirectory],
    ]);
    terminateBtn.disabled = t.state === 'completed';
    reactivateBtn.disabled = !(t.state === 'completed' && x.result === 'failure');
  }

  async function loadFiles() {
    let r;
    try {
      r = await get(`${base}/files?recursive=true`);
    } catch (e) {
      if (e.status === 404 || e.status === 409) { // not run yet, or the node is gone
        keyedRows(files.tbody, files.titles, [], () => '', () => null, e.message);
        return;
      }
      throw e;
    }
    const list = ((r && r.value) || []).filter((f) => !f.isDirectory);
    keyedRows(files.tbody, files.titles, list, (f) => f.name, (f) => {
      const p = f.properties || {};
      return row(files.titles, el('span', { class: 'kp-id' }, f.name), fmtBytes(p.contentLength), fmtTime(p.lastModified),
        downloadLink(`${base}/files/${encPath(f.name)}`, f.name));
    }, 'No files yet.');
  }

  handle = live(loadTask, 3000);
  live(loadFiles, 5000);
}

route('/jobs/:id/tasks/:taskId', renderTask);
