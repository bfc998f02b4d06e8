// Kiln dashboard core: router, API access, live refresh and small DOM
// helpers shared by the pages (docs/dashboard.md). Plain ES module, no
// build step.

export const API_VERSION = '2024-07-01.20.0';

// ---------- DOM helpers ----------

// el(tag, attrs, ...children): attrs keys: class, text, html (not used by
// pages: avoid), style (string or object), on<Event> (function), data-*,
// aria-*, boolean properties (disabled, checked, hidden, required,
// selected), value; children: nodes, strings, numbers, arrays, null/false
// (skipped).
export function el(tag, attrs, ...children) {
  const ns = SVG_TAGS.has(tag) ? 'http://www.w3.org/2000/svg' : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  if (attrs && (attrs instanceof Node || typeof attrs !== 'object' || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  let value;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'value' && !ns) { value = v; continue; } // set once the children (options) are in
    if (k === 'class' || k === 'className') {
      if (ns) e.setAttribute('class', v); else e.className = v;
    } else if (k === 'text') {
      e.textContent = v;
    } else if (k === 'style' && typeof v === 'object') {
      for (const [sk, sv] of Object.entries(v)) {
        if (sk.startsWith('--')) e.style.setProperty(sk, sv); else e.style[sk] = sv;
      }
    } else if (k.startsWith('on') && typeof v === 'function') {
      e.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (!ns && ['checked', 'disabled', 'hidden', 'required', 'selected', 'readOnly', 'multiple'].includes(k)) {
      e[k] = v;
    } else {
      e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(e, children);
  if (value !== undefined) e.value = value;
  return e;
}

const SVG_TAGS = new Set(['svg', 'g', 'path', 'line', 'polyline', 'polygon', 'rect', 'circle', 'text', 'title', 'desc', 'defs', 'tspan']);

function append(parent, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false || c === true) continue;
    if (Array.isArray(c)) append(parent, c);
    else if (c instanceof Node) parent.append(c);
    else parent.append(document.createTextNode(String(c)));
  }
}

// clear(node, ...children) replaces the children of node.
export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

// button(label, onClick, attrs): a real <button type=button>. While an
// async onClick runs the button is disabled; a thrown error is toasted.
export function button(label, onClick, attrs = {}) {
  const b = el('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', async (ev) => {
    if (b.disabled) return;
    b.disabled = true;
    try {
      await onClick(ev);
    } catch (err) {
      toast(err.message || String(err), 'error');
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

// field(label, input): a labelled form control (<label> wrapping text and
// the input, so the input's accessible name is the label).
export function field(label, input, hint) {
  return el('label', { class: 'field' }, el('span', { class: 'field-label' }, label), input,
    hint ? el('small', { class: 'hint' }, hint) : null);
}

// ---------- formatting ----------

// human('startTaskFailed') -> 'start task failed'.
// Azure's wire values run words together in lower case (node states).
const WORDS = {
  starttaskfailed: 'start task failed', waitingforstarttask: 'waiting for start task', leavingpool: 'leaving pool',
  upgradingos: 'upgrading OS', taskcompletion: 'task completion', retaineddata: 'retained data', usererror: 'user error',
  servererror: 'server error', requeue: 'requeue', terminate: 'terminate',
};

export function human(s) {
  if (s === undefined || s === null || s === '') return '';
  const w = WORDS[String(s).toLowerCase()];
  if (w) return w;
  return String(s).replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/_/g, ' ').toLowerCase();
}

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function fmtDuration(ms) {
  if (ms === undefined || ms === null || isNaN(ms)) return '';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return m + ' min ' + (s % 60) + ' s';
  const h = Math.floor(m / 60);
  return h + ' h ' + (m % 60) + ' min';
}

export function fmtBytes(n) {
  if (n === undefined || n === null || n === '') return '';
  n = Number(n);
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}

// ---------- states ----------

// Known states (Azure's names for nodes, pools, jobs, tasks, schedules) and
// their colour class; unknown states get a neutral colour. The text is
// always shown next to the colour.
const STATE_CLASS = {
  idle: 'ok', running: 'busy', active: 'ok', completed: 'done', succeeded: 'ok', success: 'ok',
  starting: 'pending', creating: 'pending', waitingforstarttask: 'pending', rebooting: 'pending',
  reimaging: 'pending', preparing: 'pending', resizing: 'pending', upgrading: 'pending',
  steady: 'ok', stopping: 'pending', enabling: 'pending', disabling: 'pending', terminating: 'pending',
  deleting: 'pending', leavingpool: 'pending',
  starttaskfailed: 'bad', unusable: 'bad', failed: 'bad', failure: 'bad', unknown: 'bad',
  preempted: 'warn', offline: 'off', disabled: 'off', deallocated: 'off', deallocating: 'off',
};

export function stateClass(state) {
  return 'state-' + (STATE_CLASS[String(state || '').toLowerCase()] || 'other');
}

// stateBadge(state): a badge with the colour of state AND its text;
// data-state is the raw (Azure) state.
export function stateBadge(state, text) {
  return el('span', { class: 'badge ' + stateClass(state), 'data-state': state || '' }, text ?? (human(state) || 'unknown'));
}

// ---------- toast ----------

export function toast(msg, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = el('div', { class: 'toast toast-' + kind, role: kind === 'error' ? 'alert' : 'status' }, String(msg));
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// ---------- API ----------

// ApiError carries the Azure error: message, code and HTTP status.
export class ApiError extends Error {
  constructor(message, status, code, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

// uiPath turns a Batch path, or an absolute odata.nextLink, into the
// /ui/api URL, adding api-version when missing.
export function uiPath(path) {
  if (/^https?:\/\//i.test(path)) {
    const u = new URL(path);
    path = u.pathname + u.search;
  }
  if (path.startsWith('/ui/api/')) path = path.slice('/ui/api'.length);
  if (!path.startsWith('/')) path = '/' + path;
  if (!/[?&]api-version=/.test(path)) path += (path.includes('?') ? '&' : '?') + 'api-version=' + API_VERSION;
  return '/ui/api' + path;
}

// api(path, opts): a Batch call as the signed-in account. path is a Batch
// path with its query ('/pools?$select=id'), or an odata.nextLink. opts:
// method (GET), body (an object is sent as JSON), headers, raw (return the
// Response), signal. Returns the JSON body (null when empty). Throws
// ApiError with Azure's message; a 401 sends the browser to sign-in.
export async function api(path, opts = {}) {
  const headers = { 'X-Kiln-UI': '1', ...(opts.headers || {}) };
  let body = opts.body;
  if (body !== undefined && body !== null && typeof body === 'object' && !(body instanceof Blob) &&
      !(body instanceof ArrayBuffer) && !(body instanceof FormData) && !ArrayBuffer.isView(body)) {
    body = JSON.stringify(body);
    headers['Content-Type'] = headers['Content-Type'] || 'application/json; odata=minimalmetadata';
  } else if ((opts.method || 'GET') !== 'GET' && body === undefined) {
    body = '';
  }
  const res = await fetch(uiPath(path), { method: opts.method || 'GET', headers, body, signal: opts.signal, credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 401 && !(res.headers.get('content-type') || '').includes('odata')) {
    const e = await errorOf(res);
    signedOut();
    throw e;
  }
  if (!res.ok) throw await errorOf(res);
  if (opts.raw) return res;
  const text = await res.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch { return text; }
}

async function errorOf(res) {
  let text = '';
  try { text = await res.text(); } catch { /* ignore */ }
  let msg = res.status + ' ' + res.statusText, code = '', body = null;
  try {
    body = JSON.parse(text);
    if (body && body.message) msg = typeof body.message === 'string' ? body.message : (body.message.value || msg);
    else if (body && body.error) msg = body.error;
    if (body && body.code) code = body.code;
    msg = String(msg).split('\nRequestId:')[0];
    const reason = body && body.values && body.values.find((v) => v.key === 'Reason');
    if (reason) msg += ' (' + reason.value + ')';
  } catch {
    const m = /<Message>([\s\S]*?)<\/Message>/.exec(text);
    if (m) msg = m[1];
    const c = /<Code>([\s\S]*?)<\/Code>/.exec(text);
    if (c) code = c[1];
  }
  return new ApiError(msg, res.status, code, body);
}

// apiList(path, {max}): every item of a list, following odata.nextLink (at
// most max items, 10000 by default).
export async function apiList(path, { max = 10000, signal } = {}) {
  const out = [];
  let next = path;
  while (next && out.length < max) {
    const page = await api(next, { signal });
    out.push(...((page && page.value) || []));
    next = page && page['odata.nextLink'];
  }
  return out.slice(0, max);
}

// download(path, filename): downloads a Batch file (e.g.
// '/jobs/j/tasks/t/files/stdout.txt') through the API, as a file save.
export async function download(path, filename) {
  const res = await api(path, { raw: true });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: filename || path.split('/').pop().split('?')[0] });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// storageURL(container, blob): the /ui/storage URL of a container (lists
// its blobs) or of a blob (downloads it; a plain link works).
export function storageURL(container, blob) {
  let p = '/ui/storage/';
  if (container) p += encodeURIComponent(container);
  if (blob) p += '/' + blob.split('/').map(encodeURIComponent).join('/');
  return p;
}

// ---------- session ----------

let account = null;

export function currentAccount() { return account; }

async function loadSession() {
  const res = await fetch('/ui/session', { credentials: 'same-origin', cache: 'no-store' });
  if (!res.ok) { account = null; return null; }
  account = (await res.json()).account;
  return account;
}

export async function signIn(acct, key) {
  const res = await fetch('/ui/session', {
    method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json', 'X-Kiln-UI': '1' },
    body: JSON.stringify({ account: acct, key }),
  });
  if (!res.ok) throw await errorOf(res);
  account = (await res.json()).account;
  renderNav();
  return account;
}

export async function signOut() {
  await fetch('/ui/session', { method: 'DELETE', credentials: 'same-origin', headers: { 'X-Kiln-UI': '1' } });
  signedOut();
}

function signedOut() {
  account = null;
  renderNav();
  if (!location.hash.startsWith('#/signin')) {
    const back = location.hash && location.hash !== '#/signin' ? '?next=' + encodeURIComponent(location.hash.slice(1)) : '';
    navigate('/signin' + back);
  }
}

// ---------- router ----------

const routes = [];

// Default data-page names of the conventional routes; route(..., name)
// overrides.
const PAGE_NAMES = {
  '/overview': 'overview', '/pools': 'pools', '/pools/:id': 'pool', '/jobs': 'jobs', '/jobs/:id': 'job',
  '/jobs/:id/tasks/:taskId': 'task', '/schedules': 'schedules', '/schedules/:id': 'schedule',
  '/applications': 'applications', '/storage': 'storage', '/storage/:container': 'container', '/signin': 'signin',
};

// route(pattern, render, name): registers a page. pattern is a hash path
// with :params ('/pools/:id'). render(root, params, query) fills root (a
// <section data-page=name>); it may be async and may return a cleanup
// function called when the page is left. name defaults to PAGE_NAMES or
// the last literal segment of the pattern.
export function route(pattern, render, name) {
  const keys = [];
  const re = new RegExp('^' + pattern.replace(/\/:([A-Za-z_]\w*)/g, (_, k) => { keys.push(k); return '/([^/]+)'; }) + '/?$');
  if (!name) name = PAGE_NAMES[pattern] || pattern.split('/').filter((s) => s && !s.startsWith(':')).pop() || 'page';
  const i = routes.findIndex((r) => r.pattern === pattern);
  const r = { pattern, re, keys, render, name };
  if (i >= 0) routes[i] = r; else routes.push(r);
}

export function navigate(path) {
  const h = '#' + (path.startsWith('/') ? path : '/' + path);
  if (location.hash === h) render(); else location.hash = h;
}

// href(path): the link target of a route path, for <a href>.
export function href(path) { return '#' + (path.startsWith('/') ? path : '/' + path); }

let generation = 0;
let cleanups = [];

// pageActive(gen) tells whether the page rendered as generation gen is
// still shown.
function pageActive(gen) { return gen === generation && !document.hidden; }

// live(fn, ms): runs fn now and every ms (3000) while the page that called
// it is shown (paused while the browser tab is hidden). Runs never
// overlap. Errors are shown once as a toast. Returns {refresh(), stop()}.
export function live(fn, ms = 3000) {
  const gen = generation;
  let timer = null, stopped = false, running = false, again = false, lastErr = '';
  const run = async () => {
    if (stopped || gen !== generation) return;
    if (running) { again = true; return; }
    clearTimeout(timer);
    if (document.hidden) { timer = setTimeout(run, ms); return; }
    running = true;
    try {
      await fn();
      lastErr = '';
    } catch (err) {
      const m = err.message || String(err);
      if (m !== lastErr && !(err.status === 401)) toast(m, 'error');
      lastErr = m;
      console.error(err);
    } finally {
      running = false;
    }
    if (stopped || gen !== generation) return;
    if (again) { again = false; timer = setTimeout(run, 0); return; }
    timer = setTimeout(run, ms);
  };
  const handle = { refresh: run, stop() { stopped = true; clearTimeout(timer); } };
  cleanups.push(() => handle.stop());
  run();
  return handle;
}

// onLeave(fn): calls fn when the current page is left.
export function onLeave(fn) { cleanups.push(fn); }

function parseHash() {
  let h = location.hash.replace(/^#/, '') || '/overview';
  let query = new URLSearchParams();
  const qi = h.indexOf('?');
  if (qi >= 0) { query = new URLSearchParams(h.slice(qi + 1)); h = h.slice(0, qi); }
  return { path: h, query };
}

async function render() {
  const gen = ++generation;
  for (const c of cleanups.splice(0)) { try { c(); } catch (e) { console.error(e); } }
  const { path, query } = parseHash();
  const main = document.getElementById('main');
  if (path !== '/signin' && !account) {
    await loadSession().catch(() => null);
    if (gen !== generation) return;
    renderNav();
    if (!account) { signedOut(); return; }
  }
  let match = null, params = {};
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m) {
      match = r;
      r.keys.forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
      break;
    }
  }
  if (!match) { navigate('/overview'); return; }
  const root = el('section', { class: 'page', 'data-page': match.name });
  clear(main, root);
  markNav(path);
  try {
    const cleanup = await match.render(root, params, query);
    if (typeof cleanup === 'function') {
      if (gen === generation) cleanups.push(cleanup); else cleanup();
    }
  } catch (err) {
    if (gen !== generation) return;
    console.error(err);
    root.append(el('p', { class: 'error', role: 'alert' }, err.message || String(err)));
  }
  if (gen !== generation) return;
  const h1 = root.querySelector('h1');
  if (h1 && renderedByKeyboard) { h1.setAttribute('tabindex', '-1'); h1.focus({ preventScroll: true }); }
  document.title = (h1 ? h1.textContent + ' · ' : '') + 'Kiln';
}

let renderedByKeyboard = false;
document.addEventListener('keydown', () => { renderedByKeyboard = true; });
document.addEventListener('mousedown', () => { renderedByKeyboard = false; });

// ---------- navigation bar ----------

const NAV = [
  ['/overview', 'Overview'], ['/pools', 'Pools'], ['/jobs', 'Jobs'], ['/schedules', 'Schedules'],
  ['/applications', 'Applications'], ['/storage', 'Storage'],
];

function renderNav() {
  const nav = document.getElementById('nav');
  if (!nav) return;
  if (!account) { clear(nav); return; }
  clear(nav,
    el('ul', { class: 'nav-links' }, NAV.map(([p, label]) => el('li', null, el('a', { href: href(p), 'data-nav': p }, label)))),
    el('div', { class: 'nav-account' },
      el('span', { class: 'account', title: 'Signed-in account' }, account),
      button('Sign out', signOut, { class: 'secondary' })));
  markNav(parseHash().path);
}

function markNav(path) {
  for (const a of document.querySelectorAll('#nav a[data-nav]')) {
    const p = a.getAttribute('data-nav');
    if (path === p || path.startsWith(p + '/')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---------- table and pager ----------

// table(columns, rows, opts): columns are {title, key | render(row),
// class, numeric}; rows objects. opts: empty (text when no rows), caption,
// rowAttrs(row) (attributes of each <tr>), stack (false: keep columns on a
// phone instead of stacking cells). Returns a scrollable wrapper
// around the <table>.
export function table(columns, rows, opts = {}) {
  const head = el('thead', null, el('tr', null, columns.map((c) => el('th', { scope: 'col', class: (c.class || '') + (c.numeric ? ' num' : '') }, c.title))));
  const body = el('tbody');
  if (!rows || rows.length === 0) {
    body.append(el('tr', { class: 'empty' }, el('td', { colspan: columns.length }, opts.empty || 'Nothing here yet.')));
  } else {
    for (const row of rows) {
      body.append(el('tr', opts.rowAttrs ? opts.rowAttrs(row) : null, columns.map((c) => {
        let v = c.render ? c.render(row) : getPath(row, c.key);
        if (v === undefined || v === null) v = '';
        return el('td', { class: (c.class || '') + (c.numeric ? ' num' : ''), 'data-label': c.title }, v);
      })));
    }
  }
  const t = el('table', { class: opts.stack === false ? 'grid' : 'grid stack' }, opts.caption ? el('caption', null, opts.caption) : null, head, body);
  return el('div', { class: 'table-wrap' }, t);
}

function getPath(o, key) {
  if (!key) return undefined;
  return key.split('.').reduce((a, k) => (a === undefined || a === null ? undefined : a[k]), o);
}

// pager({path, pageSize, render(items, page), label}): pages through a
// Batch list with odata.nextLink (Previous / Next, never counting the whole
// list). Returns {el, refresh(), reset(path)}: refresh reloads the current
// page (use it with live), reset starts again at page 1 of a new path (a
// new filter). pageSize sets maxresults.
export function pager({ path, pageSize = 100, render: renderItems, label = 'Pages' }) {
  let links = [withMax(path, pageSize)]; // links[i]: URL of page i
  let index = 0;
  const body = el('div', { class: 'pager-body' });
  const status = el('span', { class: 'pager-status', 'aria-live': 'polite' });
  const prev = el('button', { type: 'button', class: 'secondary', onclick: () => go(index - 1) }, 'Previous page');
  const next = el('button', { type: 'button', class: 'secondary', onclick: () => go(index + 1) }, 'Next page');
  const nav = el('nav', { class: 'pager', 'aria-label': label }, prev, status, next);
  const root = el('div', { class: 'pager-wrap' }, body, nav);
  let seq = 0;
  async function load() {
    const my = ++seq;
    const page = await api(links[index]);
    if (my !== seq) return;
    const items = (page && page.value) || [];
    const nl = page && page['odata.nextLink'];
    links = links.slice(0, index + 1);
    if (nl) links.push(nl);
    prev.disabled = index === 0;
    next.disabled = !nl;
    status.textContent = 'Page ' + (index + 1) + (items.length ? ' · items ' + (index * pageSize + 1) + '–' + (index * pageSize + items.length) : '');
    clear(body, renderItems(items, index));
  }
  async function go(i) {
    if (i < 0 || i >= links.length) return;
    index = i;
    try { await load(); } catch (err) { toast(err.message, 'error'); }
  }
  return {
    el: root,
    refresh: load,
    reset(p) { path = p; links = [withMax(p, pageSize)]; index = 0; return load(); },
    get page() { return index; },
  };
}

function withMax(path, n) {
  if (/[?&]maxresults=/.test(path)) return path;
  return path + (path.includes('?') ? '&' : '?') + 'maxresults=' + n;
}

// progressBar(done, total, label): role=progressbar with aria-valuenow =
// percent done.
export function progressBar(done, total, label = 'Progress') {
  const pct = total > 0 ? Math.round((100 * done) / total) : 0;
  return el('div', { class: 'progress', role: 'progressbar', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct, 'aria-valuetext': pct + '% (' + done + ' of ' + total + ')' },
    el('div', { class: 'progress-fill', style: { width: pct + '%' } }),
    el('span', { class: 'progress-text' }, pct + '% · ' + done + '/' + total));
}

// kv(pairs): a definition list of [label, value] pairs (values skipped when
// empty).
export function kv(pairs) {
  return el('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => [el('dt', null, k), el('dd', null, v)]));
}

// ---------- start ----------

// The pages import this module, so they are loaded once it has run.
const PAGES = ['signin', 'overview', 'pools', 'jobs', 'task', 'schedules', 'applications', 'storage'];
// No top-level await: a page waiting on this module while this module waits
// on the page would never start.
Promise.allSettled(PAGES.map((p) => import('./pages/' + p + '.js'))).then((loaded) => {
  loaded.forEach((r, i) => { if (r.status === 'rejected') console.error('page ' + PAGES[i] + ':', r.reason); });
  window.addEventListener('hashchange', render);
  const skip = document.getElementById('skip-link');
  if (skip) skip.addEventListener('click', (ev) => { ev.preventDefault(); document.getElementById('main').focus(); });
  render();
});
