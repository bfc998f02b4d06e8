// Overview: pools, nodes by state, jobs by state, running tasks and a chart
// of running tasks and nodes over the last hour (from /ui/history).
import { route, el, clear, api, apiList, live, table, stateBadge, href, human } from '../app.js';

route('/overview', (root) => {
  const stats = el('div', { class: 'cards', 'aria-label': 'Totals' });
  const chart = el('div', { class: 'chart card' }, el('p', { class: 'muted' }, 'Loading history…'));
  const nodeStates = el('div');
  const jobStates = el('div');
  const pools = el('div');
  root.append(
    el('h1', null, 'Overview'),
    stats,
    el('section', { 'aria-labelledby': 'ov-chart' }, el('h2', { id: 'ov-chart' }, 'Running tasks and nodes, last hour'), chart),
    el('div', { class: 'split' },
      el('section', { 'aria-labelledby': 'ov-nodes' }, el('h2', { id: 'ov-nodes' }, 'Nodes by state'), nodeStates),
      el('section', { 'aria-labelledby': 'ov-jobs' }, el('h2', { id: 'ov-jobs' }, 'Jobs by state'), jobStates)),
    el('section', { 'aria-labelledby': 'ov-pools' }, el('h2', { id: 'ov-pools' }, 'Pools'), pools),
  );

  live(async () => {
    const [poolList, counts, jobs] = await Promise.all([
      apiList('/pools?$select=id,state,allocationState,vmSize,currentDedicatedNodes,currentLowPriorityNodes,targetDedicatedNodes,targetLowPriorityNodes', { max: 1000 }),
      apiList('/nodecounts', { max: 1000 }),
      apiList('/jobs?$select=id,state,poolInfo', { max: 10000 }),
    ]);
    const nodes = {};
    let totalNodes = 0;
    const perPool = {};
    for (const pc of counts) {
      perPool[pc.poolId] = {};
      for (const part of [pc.dedicated, pc.lowPriority]) {
        for (const [key, v] of Object.entries(part || {})) {
          const k = key.toLowerCase(); // node count names are the node states in camel case
          if (k === 'total' || !v) continue;
          nodes[k] = (nodes[k] || 0) + v;
          perPool[pc.poolId][k] = (perPool[pc.poolId][k] || 0) + v;
          totalNodes += v;
        }
      }
    }
    const jobsByState = {};
    for (const j of jobs) jobsByState[j.state] = (jobsByState[j.state] || 0) + 1;
    const active = jobs.filter((j) => j.state === 'active').slice(0, 200);
    const tcs = await Promise.all(active.map((j) => api('/jobs/' + encodeURIComponent(j.id) + '/taskcounts').catch(() => null)));
    let running = 0, activeTasks = 0;
    for (const tc of tcs) {
      if (!tc) continue;
      running += tc.taskCounts.running || 0;
      activeTasks += tc.taskCounts.active || 0;
    }
    clear(stats,
      stat(poolList.length, 'Pools', 'pools'),
      stat(totalNodes, 'Nodes', 'nodes'),
      stat(jobsByState.active || 0, 'Active jobs', 'active-jobs'),
      stat(running, 'Running tasks', 'running-tasks'),
      stat(activeTasks, 'Queued tasks', 'queued-tasks'));
    clear(nodeStates, stateTable(nodes, 'No nodes.'));
    clear(jobStates, stateTable(jobsByState, 'No jobs.'));
    clear(pools, table([
      { title: 'Pool', render: (p) => el('a', { href: href('/pools/' + encodeURIComponent(p.id)) }, p.id) },
      { title: 'State', render: (p) => [stateBadge(p.state), ' ', stateBadge(p.allocationState)] },
      { title: 'VM size', key: 'vmSize' },
      { title: 'Nodes (dedicated / low-priority)', render: (p) => `${p.currentDedicatedNodes ?? 0} / ${p.currentLowPriorityNodes ?? 0}` },
      { title: 'Nodes by state', render: (p) => Object.entries(perPool[p.id] || {}).map(([s, n]) => [stateBadge(s, human(s) + ' ' + n), ' ']) },
    ], poolList, { empty: 'No pools yet.' }));
  }, 5000);

  live(async () => {
    const res = await fetch('/ui/history', { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) throw new Error('history: ' + res.status);
    const h = await res.json();
    // Drawn at the card's width in CSS pixels, so the labels keep their
    // size on a phone and a wide screen alike.
    const width = Math.max(280, Math.round(chart.clientWidth - 34));
    clear(chart, historyChart(h.samples || [], width));
  }, 10000);
});

function stat(value, label, id) {
  return el('div', { class: 'stat', 'data-stat': id }, el('span', { class: 'stat-value' }, String(value)), el('span', { class: 'stat-label' }, label));
}

function stateTable(counts, empty) {
  const rows = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([state, n]) => ({ state, n }));
  return table([
    { title: 'State', render: (r) => stateBadge(r.state) },
    { title: 'Count', key: 'n', numeric: true },
  ], rows, { empty, stack: false });
}

// Series of the chart: running tasks, all nodes, and the nodes of the
// commonest states.
const SERIES = [
  { key: 'runningTasks', label: 'Running tasks', color: '#0b5cad', get: (s) => s.runningTasks || 0, dash: '' },
  { key: 'nodes', label: 'Nodes', color: '#1b1f24', get: (s) => Object.values(s.nodes || {}).reduce((a, b) => a + b, 0), dash: '6 4' },
  { key: 'idle', label: 'Idle nodes', color: '#1a7f37', get: (s) => (s.nodes || {}).idle || 0, dash: '' },
  { key: 'running', label: 'Running nodes', color: '#8250df', get: (s) => (s.nodes || {}).running || 0, dash: '2 3' },
  { key: 'problem', label: 'Unusable or failed nodes', color: '#b42318', get: (s) => ['unusable', 'starttaskfailed', 'offline', 'preempted'].reduce((a, k) => a + ((s.nodes || {})[k] || 0), 0), dash: '' },
];

// historyChart draws samples as inline SVG lines over the last hour.
function historyChart(samples, W = 800) {
  const H = 240, L = 44, R = 12, T = 12, B = 28;
  const now = Date.now(), from = now - 3600 * 1000;
  const pts = samples.map((s) => ({ t: new Date(s.time).getTime(), s })).filter((p) => p.t >= from);
  let max = 1;
  for (const p of pts) for (const ser of SERIES) max = Math.max(max, ser.get(p.s));
  max = niceMax(max);
  const x = (t) => L + ((t - from) / (now - from)) * (W - L - R);
  const y = (v) => H - B - (v / max) * (H - T - B);
  const last = pts.length ? pts[pts.length - 1].s : null;
  const summary = last ? SERIES.map((ser) => ser.label + ' ' + ser.get(last)).join(', ') : 'no samples yet';
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Running tasks and nodes over the last hour; now: ' + summary, 'data-testid': 'history-chart' });
  svg.append(el('title', null, 'Running tasks and nodes over the last hour'));
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, yy = y(v);
    svg.append(el('line', { class: 'gridline', x1: L, x2: W - R, y1: yy, y2: yy }));
    svg.append(el('text', { class: 'label', x: L - 6, y: yy + 4, 'text-anchor': 'end' }, String(Math.round(v))));
  }
  for (let m = 60; m >= 0; m -= (W < 500 ? 30 : 15)) {
    const xx = x(now - m * 60000);
    svg.append(el('text', { class: 'label', x: xx, y: H - 8, 'text-anchor': 'middle' }, m === 0 ? 'now' : '-' + m + ' min'));
  }
  svg.append(el('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  svg.append(el('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
  for (const ser of SERIES) {
    if (!pts.length) break;
    const d = pts.map((p) => `${x(p.t).toFixed(1)},${y(ser.get(p.s)).toFixed(1)}`).join(' ');
    svg.append(el('polyline', { points: d, fill: 'none', stroke: ser.color, 'stroke-width': 2, 'stroke-dasharray': ser.dash || null, 'data-series': ser.key }));
    if (pts.length === 1) {
      svg.append(el('circle', { cx: x(pts[0].t), cy: y(ser.get(pts[0].s)), r: 3, fill: ser.color }));
    }
  }
  const legend = el('ul', { class: 'chart-legend' }, SERIES.map((ser) =>
    el('li', null, el('span', { class: 'swatch', style: { background: ser.color }, 'aria-hidden': 'true' }), ser.label + (last ? ': ' + ser.get(last) : ''))));
  return [svg, legend, pts.length ? null : el('p', { class: 'muted' }, 'No samples yet: the server samples every 10 seconds.')];
}

function niceMax(v) {
  if (v <= 4) return 4;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
