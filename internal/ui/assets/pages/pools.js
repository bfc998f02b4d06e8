// Pools: the list, and a pool's page with its node heatmap, resize,
// autoscale (enable, disable, evaluate a formula) and each node's start
// task output.
import { route, el, clear, api, apiList, live, table, stateBadge, stateClass, href, human, button, field, kv, toast, fmtTime } from '../app.js';

const enc = encodeURIComponent;

route('/pools', (root) => {
  const list = el('div', null, el('p', { class: 'muted' }, 'Loading…'));
  root.append(el('h1', null, 'Pools'), list, createPoolForm(() => handle.refresh()));
  const handle = live(async () => {
    const [pools, counts] = await Promise.all([
      apiList('/pools?$select=id,displayName,state,allocationState,vmSize,currentDedicatedNodes,currentLowPriorityNodes,targetDedicatedNodes,targetLowPriorityNodes,enableAutoScale', { max: 2000 }),
      apiList('/nodecounts', { max: 2000 }),
    ]);
    const perPool = {};
    for (const pc of counts) {
      const m = (perPool[pc.poolId] = {});
      for (const part of [pc.dedicated, pc.lowPriority]) {
        for (const [key, v] of Object.entries(part || {})) {
          const k = key.toLowerCase(); // node count names are the node states in camel case
          if (k !== 'total' && v) m[k] = (m[k] || 0) + v;
        }
      }
    }
    clear(list, table([
      { title: 'Pool', render: (p) => el('a', { href: href('/pools/' + enc(p.id)), 'data-pool-id': p.id }, p.id) },
      { title: 'State', render: (p) => [stateBadge(p.state), ' ', stateBadge(p.allocationState)] },
      { title: 'VM size', key: 'vmSize' },
      { title: 'Dedicated (current / target)', render: (p) => `${p.currentDedicatedNodes ?? 0} / ${p.targetDedicatedNodes ?? 0}` },
      { title: 'Low-priority (current / target)', render: (p) => `${p.currentLowPriorityNodes ?? 0} / ${p.targetLowPriorityNodes ?? 0}` },
      { title: 'Autoscale', render: (p) => (p.enableAutoScale ? 'on' : 'off') },
      { title: 'Nodes by state', render: (p) => Object.entries(perPool[p.id] || {}).map(([s, n]) => [stateBadge(s, human(s) + ' ' + n), ' ']) },
    ], pools, { empty: 'No pools yet: create one below (or with the CLI or an Azure Batch SDK).' }));
  }, 3000);
});

// createPoolForm: a pool from the most used fields (Azure's Pool - Add).
function createPoolForm(done) {
  const id = el('input', { id: 'new-pool-id', required: true, spellcheck: 'false', autocapitalize: 'none', maxlength: 64, pattern: '[A-Za-z0-9_\\-]+' });
  const vmSize = el('input', { id: 'new-pool-vmsize', value: 'standard_d2s_v3', spellcheck: 'false' });
  const nodes = el('input', { id: 'new-pool-nodes', type: 'number', min: 0, step: 1, value: 1, inputmode: 'numeric' });
  const slots = el('input', { id: 'new-pool-slots', type: 'number', min: 1, step: 1, value: 1, inputmode: 'numeric' });
  const start = el('input', { id: 'new-pool-start', spellcheck: 'false', placeholder: "/bin/sh -c 'echo ready'", size: 32 });
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const submit = el('button', { type: 'submit' }, 'Create pool');
  const form = el('form', { class: 'toolbar', 'aria-label': 'Create a pool' },
    field('Pool ID', id), field('VM size', vmSize), field('Dedicated nodes', nodes), field('Task slots per node', slots),
    field('Start task command line', start, 'optional'), submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const body = { id: id.value.trim(), vmSize: vmSize.value.trim() || 'standard_d2s_v3',
      targetDedicatedNodes: Number(nodes.value || 0), taskSlotsPerNode: Number(slots.value || 1) };
    if (start.value.trim()) body.startTask = { commandLine: start.value.trim(), waitForSuccess: true };
    submit.disabled = true;
    try {
      await api('/pools', { method: 'POST', body });
      toast('Pool ' + body.id + ' created');
      id.value = '';
      done();
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return el('section', { class: 'card', 'aria-labelledby': 'new-pool' }, el('h2', { id: 'new-pool' }, 'Create a pool'), form, err);
}

// Node states in the legend, in a useful order; others are added as seen.
// Azure's node state values (lower case on the wire).
const NODE_STATES = ['idle', 'running', 'starting', 'waitingforstarttask', 'creating', 'rebooting', 'reimaging',
  'leavingpool', 'starttaskfailed', 'unusable', 'preempted', 'offline', 'unknown', 'deallocated', 'deallocating', 'upgradingos'];

route('/pools/:id', (root, params) => {
  const id = params.id;
  const path = '/pools/' + enc(id);
  let pool = null;
  let selected = null; // node id whose details are shown
  let formsFilled = false;
  let resizeDirty = false;

  const summary = el('div', { class: 'card' }, el('p', { class: 'muted' }, 'Loading…'));
  const legend = el('ul', { class: 'legend', 'aria-label': 'Node states' });
  const heat = el('ul', { class: 'heatmap', 'aria-label': 'Nodes of pool ' + id, 'data-testid': 'heatmap' });
  const nodeInfo = el('div', { class: 'card', 'aria-live': 'polite' }, el('p', { class: 'muted' }, 'Select a node to see its details and start task output.'));

  // Resize.
  const dedicated = el('input', { type: 'number', min: 0, step: 1, id: 'resize-dedicated', inputmode: 'numeric' });
  const lowPri = el('input', { type: 'number', min: 0, step: 1, id: 'resize-lowpri', inputmode: 'numeric' });
  for (const i of [dedicated, lowPri]) i.addEventListener('input', () => { resizeDirty = true; });
  const resizeMsg = el('p', { class: 'muted', 'aria-live': 'polite' });
  const resizeBtn = button('Resize', async () => {
    const body = { targetDedicatedNodes: Number(dedicated.value || 0), targetLowPriorityNodes: Number(lowPri.value || 0) };
    await api(path + '/resize', { method: 'POST', body });
    resizeDirty = false;
    toast(`Resizing ${id} to ${body.targetDedicatedNodes} dedicated and ${body.targetLowPriorityNodes} low-priority nodes`);
    refresh.refresh();
  });
  const stopBtn = button('Stop resizing', async () => {
    await api(path + '/stopresize', { method: 'POST' });
    toast('Resize stopped');
    refresh.refresh();
  }, { class: 'secondary' });
  const resizeForm = el('form', { class: 'toolbar', 'aria-label': 'Resize pool', onsubmit: (e) => { e.preventDefault(); resizeBtn.click(); } },
    field('Target dedicated nodes', dedicated), field('Target low-priority nodes', lowPri), resizeBtn, stopBtn);

  // Autoscale.
  const formula = el('textarea', { id: 'autoscale-formula', class: 'code', rows: 6, spellcheck: 'false',
    placeholder: '$TargetDedicatedNodes = min(4, $PendingTasks.GetSample(1));\n$NodeDeallocationOption = taskcompletion;' });
  const interval = el('input', { id: 'autoscale-interval', value: 'PT5M', size: 10, spellcheck: 'false' });
  const evalOut = el('div', { class: 'autoscale-result', 'aria-live': 'polite', 'data-testid': 'autoscale-result' });
  const evalBtn = button('Evaluate', async () => {
    try {
      const run = await api(path + '/evaluateautoscale', { method: 'POST', body: { autoScaleFormula: formula.value } });
      clear(evalOut, autoScaleRun(run, 'Evaluation result'));
    } catch (err) {
      clear(evalOut, el('p', { class: 'error', role: 'alert' }, err.message));
    }
  }, { class: 'secondary' });
  const enableBtn = button('Enable autoscale', async () => {
    const body = { autoScaleFormula: formula.value };
    if (interval.value.trim()) body.autoScaleEvaluationInterval = interval.value.trim();
    try {
      await api(path + '/enableautoscale', { method: 'POST', body });
      toast('Autoscale enabled');
      clear(evalOut);
      refresh.refresh();
    } catch (err) {
      clear(evalOut, el('p', { class: 'error', role: 'alert' }, err.message));
    }
  });
  const disableBtn = button('Disable autoscale', async () => {
    await api(path + '/disableautoscale', { method: 'POST' });
    toast('Autoscale disabled');
    refresh.refresh();
  }, { class: 'secondary' });
  const autoState = el('div');
  const poolBody = el('div', { class: 'page' }); // hidden when the pool does not exist

  root.append(
    el('h1', null, 'Pool ', el('span', { class: 'mono' }, id)),
    el('div', { class: 'toolbar' }, el('a', { href: href('/pools') }, '← All pools'),
      confirmButton('Delete pool', async () => {
        await api(path, { method: 'DELETE' });
        toast('Deleting pool ' + id);
        location.hash = href('/pools');
      })),
    summary,
    poolBody);
  poolBody.append(
    el('section', { 'aria-labelledby': 'pool-nodes' },
      el('h2', { id: 'pool-nodes' }, 'Nodes'),
      legend,
      heat),
    el('section', { 'aria-labelledby': 'pool-node' }, el('h2', { id: 'pool-node' }, 'Node details and start task output'), nodeInfo),
    el('div', { class: 'split' },
      el('section', { 'aria-labelledby': 'pool-resize', class: 'card' }, el('h2', { id: 'pool-resize' }, 'Resize'), resizeForm, resizeMsg),
      el('section', { 'aria-labelledby': 'pool-autoscale', class: 'card' },
        el('h2', { id: 'pool-autoscale' }, 'Autoscale'),
        autoState,
        field('Autoscale formula', formula),
        el('div', { class: 'toolbar' }, field('Evaluation interval', interval, 'ISO 8601, e.g. PT5M'), evalBtn, enableBtn, disableBtn),
        evalOut)),
  );

  async function showNode(nodeId, focusHeading) {
    selected = nodeId;
    for (const b of heat.querySelectorAll('[data-node-id]')) b.setAttribute('aria-pressed', String(b.getAttribute('data-node-id') === nodeId));
    const np = path + '/nodes/' + enc(nodeId);
    let node;
    try {
      node = await api(np);
    } catch (err) {
      clear(nodeInfo, el('p', { class: 'error' }, err.message));
      return;
    }
    if (selected !== nodeId) return;
    nodeInfo.setAttribute('data-shown', node.state + '/' + node.schedulingState);
    const hasStart = !pool || !!pool.startTask || !!node.startTaskInfo;
    const [out, errText] = hasStart
      ? await Promise.all([nodeFile(np + '/files/startup/stdout.txt'), nodeFile(np + '/files/startup/stderr.txt')])
      : ['(the pool has no start task)', '(the pool has no start task)'];
    if (selected !== nodeId) return;
    const sti = node.startTaskInfo || {};
    const heading = el('h3', { tabindex: '-1' }, 'Node ', el('span', { class: 'mono' }, node.id), ' ', stateBadge(node.state));
    const act = (label, fn, attrs) => button(label, async () => { await fn(); toast(label + ': ' + node.id); refresh.refresh(); }, { class: 'secondary', ...attrs });
    const actions = el('div', { class: 'toolbar', role: 'group', 'aria-label': 'Node actions' },
      act('Reboot node', () => api(np + '/reboot', { method: 'POST', body: { nodeRebootOption: 'requeue' } })),
      node.schedulingState === 'disabled'
        ? act('Enable scheduling', () => api(np + '/enablescheduling', { method: 'POST' }))
        : act('Disable scheduling', () => api(np + '/disablescheduling', { method: 'POST', body: { nodeDisableSchedulingOption: 'requeue' } })),
      confirmButton('Remove node from pool', () => api(path + '/removenodes', { method: 'POST', body: { nodeList: [node.id], nodeDeallocationOption: 'requeue' } }).then(() => {
        toast('Removing ' + node.id); refresh.refresh();
      })));
    clear(nodeInfo,
      heading,
      actions,
      kv([
        ['State', stateBadge(node.state)],
        ['Scheduling', human(node.schedulingState)],
        ['Dedicated', node.isDedicated === false ? 'no (low-priority)' : 'yes'],
        ['IP address', node.ipAddress],
        ['VM size', node.vmSize],
        ['Running tasks', String(node.runningTasksCount ?? 0)],
        ['Tasks run', String(node.totalTasksRun ?? 0)],
        ['Allocated', fmtTime(node.allocationTime)],
        ['Start task', sti.state ? [stateBadge(sti.state), sti.exitCode !== undefined ? ' exit code ' + sti.exitCode : '', sti.result ? ' (' + sti.result + ')' : ''] : (pool && pool.startTask ? 'not run yet' : 'none')],
        ['Start task failure', sti.failureInfo ? sti.failureInfo.message || sti.failureInfo.code : ''],
        ['Errors', (node.errors || []).map((e) => e.message || e.code).join('; ')],
      ]),
      el('h4', null, 'Start task stdout'), el('pre', { 'data-testid': 'starttask-stdout', tabindex: '0', 'aria-label': 'Start task stdout' }, out),
      el('h4', null, 'Start task stderr'), el('pre', { 'data-testid': 'starttask-stderr', tabindex: '0', 'aria-label': 'Start task stderr' }, errText));
    if (focusHeading) heading.focus();
  }

  async function nodeFile(p) {
    try {
      const res = await api(p, { raw: true });
      return await res.text();
    } catch (err) {
      if (err.status === 404) return '(no file)';
      return '(' + err.message + ')';
    }
  }

  const refresh = live(async () => {
    let p, nodes;
    try {
      [p, nodes] = await Promise.all([
        api(path),
        apiList(path + '/nodes?$select=id,state,schedulingState,isDedicated,runningTasksCount,startTaskInfo', { max: 5000 }),
      ]);
    } catch (err) {
      if (err.status !== 404 || err.code !== 'PoolNotFound') throw err;
      clear(summary, el('p', { class: 'error', role: 'alert' }, 'There is no pool ' + id + ' (any more).'));
      poolBody.hidden = true;
      return;
    }
    poolBody.hidden = false;
    pool = p;
    if (!resizeDirty) { // follow the pool's targets until the user edits them
      dedicated.value = p.targetDedicatedNodes ?? 0;
      lowPri.value = p.targetLowPriorityNodes ?? 0;
    }
    if (!formsFilled) {
      if (p.autoScaleFormula) formula.value = p.autoScaleFormula;
      if (p.autoScaleEvaluationInterval) interval.value = p.autoScaleEvaluationInterval;
      formsFilled = true;
    }
    const auto = !!p.enableAutoScale;
    resizeBtn.disabled = auto;
    stopBtn.disabled = p.allocationState !== 'resizing';
    resizeMsg.textContent = auto ? 'Autoscale is on: disable it to resize by hand.' : '';
    disableBtn.disabled = !auto;
    evalBtn.disabled = !auto;
    evalBtn.title = auto ? '' : 'Evaluation needs autoscale enabled on the pool';
    clear(autoState,
      el('p', null, 'Autoscale is ', el('strong', null, auto ? 'on' : 'off'),
        auto && p.autoScaleEvaluationInterval ? ', evaluated every ' + p.autoScaleEvaluationInterval : '', '.'),
      auto && p.autoScaleRun ? autoScaleRun(p.autoScaleRun, 'Last evaluation') : null);
    clear(summary, kv([
      ['State', [stateBadge(p.state), ' ', stateBadge(p.allocationState)]],
      ['VM size', p.vmSize],
      ['Dedicated nodes', `${p.currentDedicatedNodes ?? 0} of target ${p.targetDedicatedNodes ?? 0}`],
      ['Low-priority nodes', `${p.currentLowPriorityNodes ?? 0} of target ${p.targetLowPriorityNodes ?? 0}`],
      ['Task slots per node', String(p.taskSlotsPerNode ?? 1)],
      ['Start task', p.startTask ? el('code', null, p.startTask.commandLine) : ''],
      ['Created', fmtTime(p.creationTime)],
      ['Resize errors', (p.resizeErrors || []).map((e) => e.message || e.code).join('; ')],
    ]));

    // Legend with counts, then the heatmap.
    const counts = {};
    for (const n of nodes) counts[n.state] = (counts[n.state] || 0) + 1;
    const states = [...NODE_STATES.filter((s) => ['idle', 'running', 'starting', 'starttaskfailed', 'unusable', 'preempted', 'offline'].includes(s) || counts[s]),
      ...Object.keys(counts).filter((s) => !NODE_STATES.includes(s))];
    clear(legend, states.map((s) => el('li', null, stateBadge(s, human(s) + ': ' + (counts[s] || 0)))));
    // Tiles are updated in place (keyed by node id): focus and a pending
    // click survive the refresh.
    const emptyMsg = heat.querySelector('.empty');
    if (nodes.length === 0) {
      if (!emptyMsg) clear(heat, el('li', { class: 'muted empty' }, 'No nodes.'));
    } else {
      if (emptyMsg) emptyMsg.remove();
      const have = new Map([...heat.querySelectorAll('li[data-node]')].map((li) => [li.getAttribute('data-node'), li]));
      let prev = null;
      for (const n of nodes) {
        let li = have.get(n.id);
        have.delete(n.id);
        if (!li) {
          const b = el('button', { type: 'button', 'data-node-id': n.id, onclick: () => showNode(n.id, false) },
            el('span', { class: 'node-state' }), el('span', { class: 'node-id' }, n.id), el('span', { class: 'node-tasks' }));
          li = el('li', { 'data-node': n.id }, b);
        }
        const b = li.firstChild;
        b.className = 'node ' + stateClass(n.state);
        b.setAttribute('data-state', n.state);
        b.setAttribute('aria-pressed', String(n.id === selected));
        b.title = n.id + ': ' + human(n.state);
        b.querySelector('.node-state').textContent = human(n.state);
        b.querySelector('.node-tasks').textContent = n.runningTasksCount ? n.runningTasksCount + ' task' + (n.runningTasksCount === 1 ? '' : 's') : '';
        const want = prev ? prev.nextSibling : heat.firstChild;
        if (want !== li) heat.insertBefore(li, want);
        prev = li;
      }
      for (const li of have.values()) li.remove();
    }
    if (selected && !nodes.some((n) => n.id === selected)) {
      selected = null;
      clear(nodeInfo, el('p', { class: 'muted' }, 'The node left the pool.'));
    } else if (!selected && nodes.length) {
      showNode(nodes[0].id, false);
    } else if (selected) {
      const n = nodes.find((x) => x.id === selected);
      if (n && n.state + '/' + n.schedulingState !== nodeInfo.getAttribute('data-shown')) {
        nodeInfo.setAttribute('data-shown', n.state + '/' + n.schedulingState);
        showNode(selected, false);
      }
    }
  }, 3000);
});

// confirmButton(label, action): a danger button that asks once, in place
// (no modal dialog): the first press shows "Confirm" and "Cancel".
function confirmButton(label, action) {
  const box = el('span', { class: 'confirm' });
  const first = () => clear(box, el('button', { type: 'button', class: 'danger', onclick: ask }, label));
  function ask() {
    const yes = button('Confirm: ' + label.toLowerCase(), async () => { await action(); first(); }, { class: 'danger' });
    clear(box, yes, ' ', el('button', { type: 'button', class: 'secondary', onclick: first }, 'Cancel'));
    yes.focus();
  }
  first();
  return box;
}

// autoScaleRun shows an AutoScaleRun: its results ($Variable=value per
// line) or its error.
function autoScaleRun(run, title) {
  if (!run) return null;
  const results = (run.results || '').split(';').map((s) => s.trim()).filter(Boolean);
  return el('div', { class: 'autoscale-run' },
    el('h3', null, title, run.timestamp ? ' (' + fmtTime(run.timestamp) + ')' : ''),
    results.length ? el('ul', { class: 'mono' }, results.map((r) => el('li', null, r))) : null,
    run.error ? el('p', { class: 'error', role: 'alert' }, (run.error.code ? run.error.code + ': ' : '') + (run.error.message || ''),
      (run.error.values || []).map((v) => el('span', { class: 'mono' }, ' ' + (v.name || v.key) + '=' + v.value))) : null);
}

