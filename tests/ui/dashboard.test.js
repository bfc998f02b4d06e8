'use strict';
// Drives Kiln's web dashboard (/ui) in headless Chromium: Debian's chromium
// package (/usr/bin/chromium) driven by npm playwright-core. A real
// `kiln server` with real local agent processes runs in a temporary data
// directory; the browser signs in with the account's key and works through
// the pages the way a user does. Screenshots of every page are saved in
// tests/ui/artifacts/ (or $KILN_UI_ARTIFACTS); with KILN_UI_UPDATE_DOCS=1 the
// pool heatmap and job page screenshots are also copied to docs/images/.
//
// The tests rely on the dashboard's test hooks (docs/dashboard.md): every
// page root has data-page="<name>"; heatmap nodes are [data-node-id] with
// data-state and the state as visible text; a job's progress bar is
// role="progressbar" with aria-valuenow = percent completed; a task's live
// stdout is [data-testid="stdout"]; controls have accessible names.
//
// Env: KILN_BIN — path to a built kiln binary (if unset, the test builds one
// with `go build ./cmd/kiln`); KILN_CHROMIUM — the browser (default
// /usr/bin/chromium); KILN_UI_KEEP_TMP=1 keeps the data directory.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { REPO_ROOT, freePort, sleep, poll, kilnBin: buildKiln } = require('../lib/harness.js');

const ACCOUNT = 'kilnui';
const KEY = Buffer.from('kiln-ui-browser-test-key-0123456789abcdef-0123456789abcdef').toString('base64');
const API_VERSION = '2024-07-01.20.0';
const CHROMIUM = process.env.KILN_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];

const ARTIFACTS = path.resolve(process.env.KILN_UI_ARTIFACTS || path.join(__dirname, 'artifacts'));
const DOCS_IMAGES = path.join(REPO_ROOT, 'docs', 'images');

const POOL_ID = 'render-farm';
const JOB_ID = 'thumbnails';
const LIVE_TASK_ID = 'encode-live';
const JOB_TASKS = Array.from({ length: 8 }, (_, i) => `frame-${String(i + 1).padStart(3, '0')}`);
const SCHEDULE_ID = 'nightly-report';
const APP_ID = 'ffmpeg-tools';
const CONTAINER = 'results';
const BLOB = 'reports/summary.txt';
const BLOB_TEXT = 'frames rendered: 8\nstatus: ok\n';

// The pages of the dashboard: hash route, the data-page name of its root and
// a text it must show once its data is loaded.
const PAGES = {
  overview: { hash: '#/overview', page: 'overview', text: null },
  pools: { hash: '#/pools', page: 'pools', text: POOL_ID },
  pool: { hash: `#/pools/${POOL_ID}`, page: 'pool', text: POOL_ID },
  jobs: { hash: '#/jobs', page: 'jobs', text: JOB_ID },
  job: { hash: `#/jobs/${JOB_ID}`, page: 'job', text: JOB_TASKS[0] },
  task: { hash: `#/jobs/${JOB_ID}/tasks/${LIVE_TASK_ID}`, page: 'task', text: LIVE_TASK_ID },
  schedules: { hash: '#/schedules', page: 'schedules', text: SCHEDULE_ID },
  schedule: { hash: `#/schedules/${SCHEDULE_ID}`, page: 'schedule', text: SCHEDULE_ID },
  applications: { hash: '#/applications', page: 'applications', text: APP_ID },
  storage: { hash: '#/storage', page: 'storage', text: CONTAINER },
  container: { hash: `#/storage/${CONTAINER}`, page: 'container', text: 'summary.txt' },
};

const STEP = { timeout: 120_000 };
const NO_TOASTS = '#toasts { display: none !important; }'; // for the README's pictures only
const WAIT = 60_000; // generous deadline of each wait in the browser

let tmpRoot;
let dataDir;
let releaseDir; // tasks wait for files in here, so the test decides when they end
let bin;
let baseURL;
let server;
let serverExit;
let serverLog;
let browser;
let context;
let page;
const pageErrors = [];
let signedIn = false; // the later tests need the session of the first
let consoleLog;

// kiln runs the CLI against the test server.
function kiln(...args) {
  return execFileSync(bin, args, {
    env: { ...process.env, KILN_URL: baseURL, KILN_ACCOUNT_NAME: ACCOUNT, KILN_ACCOUNT_KEY: KEY, KILN_DATA_DIR: dataDir },
    encoding: 'utf8',
  });
}

function killAgents() {
  if (!dataDir) return;
  const nodesDir = path.join(dataDir, 'nodes');
  let entries = [];
  try {
    entries = fs.readdirSync(nodesDir);
  } catch {
    return;
  }
  for (const name of entries) {
    let pid;
    try {
      pid = parseInt(fs.readFileSync(path.join(nodesDir, name, 'agent.pid'), 'utf8').trim(), 10);
    } catch {
      continue;
    }
    if (!(pid > 0)) continue;
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone already */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ }
  }
}

function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try { server.kill('SIGKILL'); } catch { /* gone already */ }
  }
  killAgents();
}

// Last resort if the runner dies between before() and after().
process.on('exit', stopServer);

function serverLogTail(n = 4000) {
  try {
    const s = fs.readFileSync(serverLog, 'utf8');
    return s.length > n ? s.slice(-n) : s;
  } catch {
    return '';
  }
}

function release(name) {
  fs.writeFileSync(path.join(releaseDir, name), 'go\n');
}

// waitCmd is a shell fragment that blocks until the test calls release(name).
const waitCmd = (name) => `while [ ! -e ${releaseDir}/${name} ]; do sleep 0.2; done`;

async function screenshot(name, p = page, { fullPage = true, style } = {}) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await p.screenshot({ path: file, fullPage, style });
  return file;
}

// step wraps a test body: on failure it saves a screenshot of the page and
// adds the tail of the server's log to the error.
function step(name, fn) {
  return async () => {
    if (name !== 'sign-in' && !signedIn) throw new Error('not signed in: the sign-in test failed');
    try {
      await fn();
    } catch (err) {
      const safe = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
      try { await screenshot(`FAILED-${safe}`); } catch { /* browser gone */ }
      err.message += `\n(page: ${page ? page.url() : '-'}; screenshot ${path.join(ARTIFACTS, `FAILED-${safe}.png`)})\n--- server log tail ---\n${serverLogTail()}`;
      throw err;
    }
  };
}

// api calls the Batch API through the dashboard's proxy with the browser's
// session cookie, as the dashboard's own scripts do.
async function api(method, p, body, { ui = true } = {}) {
  const sep = p.includes('?') ? '&' : '?';
  const headers = {};
  if (ui) headers['X-Kiln-UI'] = '1';
  if (body !== undefined) headers['Content-Type'] = 'application/json; odata=minimalmetadata';
  const res = await context.request.fetch(`${baseURL}/ui/api${p}${sep}api-version=${API_VERSION}`, {
    method,
    headers,
    data: body === undefined ? undefined : JSON.stringify(body),
    failOnStatusCode: false,
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status(), json, text };
}

async function apiOK(method, p, body) {
  const res = await api(method, p, body);
  assert.ok(res.status >= 200 && res.status < 300, `${method} ${p}: ${res.status} ${res.text}`);
  return res.json;
}

// show navigates to one of PAGES and waits until its root and its text are there.
async function show(key, p = page) {
  const def = PAGES[key];
  await p.goto(`${baseURL}/ui/${def.hash}`);
  const root = p.locator(`[data-page="${def.page}"]`);
  await root.first().waitFor({ state: 'visible', timeout: WAIT });
  if (def.text) await root.first().getByText(def.text, { exact: false }).first().waitFor({ state: 'visible', timeout: WAIT });
  return root.first();
}

const heatmapNodes = (p = page) => p.locator('[data-node-id]');

async function nodeStates(p = page) {
  return heatmapNodes(p).evaluateAll((els) => els.map((e) => ({
    id: e.getAttribute('data-node-id'),
    state: e.getAttribute('data-state'),
    text: (e.innerText || e.textContent || '').trim(),
    label: e.getAttribute('aria-label') || e.getAttribute('title') || '',
  })));
}

async function progressOf(root) {
  const bar = root.getByRole('progressbar').first();
  await bar.waitFor({ state: 'attached', timeout: WAIT });
  return Number(await bar.getAttribute('aria-valuenow'));
}

async function readDownload(download) {
  const file = await download.path();
  return fs.readFileSync(file, 'utf8');
}

// downloadFrom clicks the Download control inside scope (a link or a button)
// and returns the suggested file name and the downloaded content.
async function downloadFrom(scope) {
  const control = scope.getByRole('link', { name: /download/i })
    .or(scope.getByRole('button', { name: /download/i })).first();
  await control.waitFor({ state: 'visible', timeout: WAIT });
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: WAIT }),
    control.click(),
  ]);
  return { name: download.suggestedFilename(), text: await readDownload(download) };
}

// rowWith finds the smallest row-like element (table row or list item) of
// root that contains text.
function rowWith(root, text) {
  return root.locator('tr, li, [role="row"]').filter({ hasText: text }).last();
}

describe('Kiln dashboard in headless Chromium', { timeout: 900_000 }, () => {
  before(async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: the dashboard tests need Debian's chromium package (apt-get install chromium; .ci/run does) or KILN_CHROMIUM`);
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    console.log(`# screenshots and logs: ${ARTIFACTS}`);
    consoleLog = path.join(ARTIFACTS, 'browser-console.log');
    fs.writeFileSync(consoleLog, '');

    tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ui-'));
    dataDir = path.join(tmpRoot, 'data');
    fs.mkdirSync(dataDir);
    // Tasks may run as a pool user (agents running as root): the release
    // directory must be reachable by anyone.
    releaseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ui-release-'));
    fs.chmodSync(releaseDir, 0o755);
    bin = buildKiln(tmpRoot);

    const port = await freePort();
    const addr = `127.0.0.1:${port}`;
    baseURL = `http://${addr}`;
    serverLog = path.join(tmpRoot, 'server.log');
    const logFd = fs.openSync(serverLog, 'a');
    server = spawn(bin, ['server', '--addr', addr, '--data-dir', dataDir, '--heartbeat-interval', '2s'], {
      env: { ...process.env, KILN_ACCOUNT_NAME: ACCOUNT, KILN_ACCOUNT_KEY: KEY },
      stdio: ['ignore', logFd, logFd],
    });
    fs.closeSync(logFd);
    serverExit = new Promise((resolve) => server.once('exit', (code, sig) => resolve({ code, sig })));
    await poll('GET /healthz', 30_000, async () => {
      if (server.exitCode !== null) throw new Error(`kiln server exited with ${server.exitCode}:\n${serverLogTail()}`);
      const res = await fetch(`${baseURL}/healthz`);
      return res.status === 200;
    }, 50);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    page = await context.newPage();
    page.on('pageerror', (err) => {
      pageErrors.push(`${page.url()}: ${err.stack || err.message}`);
      fs.appendFileSync(consoleLog, `[pageerror] ${page.url()}: ${err.stack || err.message}\n`);
    });
    page.on('console', (msg) => fs.appendFileSync(consoleLog, `[${msg.type()}] ${msg.text()}\n`));
  }, { timeout: 300_000 });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    stopServer();
    if (server) await Promise.race([serverExit, sleep(5_000)]);
    if (process.env.KILN_UI_KEEP_TMP) {
      console.log(`# kept ${tmpRoot}`);
    } else {
      if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
    }
    if (releaseDir) fs.rmSync(releaseDir, { recursive: true, force: true });
    console.log(`# screenshots and logs: ${ARTIFACTS}`);
  });

  it('shows the sign-in page, refuses a wrong key and signs in with the account key', STEP, step('sign-in', async () => {
    await page.goto(`${baseURL}/ui/`);
    const signin = page.locator('[data-page="signin"]');
    await signin.waitFor({ state: 'visible', timeout: WAIT });
    assert.match(page.url(), /#\/signin/, 'an unauthenticated visit lands on #/signin');
    await screenshot('00-signin');

    // A wrong key: 401, and we stay on the sign-in page.
    await page.getByLabel('Account', { exact: true }).fill(ACCOUNT);
    await page.getByLabel('Key', { exact: true }).fill(Buffer.from('not the key').toString('base64'));
    const [bad] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/ui/session') && r.request().method() === 'POST', { timeout: WAIT }),
      page.getByRole('button', { name: /sign in/i }).click(),
    ]);
    assert.equal(bad.status(), 401, 'a wrong key is refused');
    assert.equal((await context.cookies()).filter((c) => c.name === 'kiln_session').length, 0, 'no session cookie for a wrong key');
    await signin.waitFor({ state: 'visible', timeout: WAIT });

    await page.getByLabel('Key', { exact: true }).fill(KEY);
    await page.getByRole('button', { name: /sign in/i }).click();
    await page.locator('[data-page="overview"]').waitFor({ state: 'visible', timeout: WAIT });

    const cookie = (await context.cookies()).find((c) => c.name === 'kiln_session');
    assert.ok(cookie, 'kiln_session cookie is set');
    assert.equal(cookie.httpOnly, true, 'session cookie is HttpOnly');
    assert.equal(cookie.sameSite, 'Strict', 'session cookie is SameSite=Strict');
    assert.equal(cookie.path, '/ui', 'session cookie is scoped to /ui');
    assert.equal(await page.evaluate(() => document.cookie.includes('kiln_session')), false, 'scripts cannot read the session cookie');

    const who = await context.request.get(`${baseURL}/ui/session`);
    assert.equal(who.status(), 200);
    assert.equal((await who.json()).account, ACCOUNT);
    signedIn = true;
  }));

  it('the API proxy needs the X-Kiln-UI header', STEP, step('proxy-header', async () => {
    const without = await api('GET', '/pools', undefined, { ui: false });
    assert.ok(without.status >= 400 && without.status < 500, `without X-Kiln-UI: ${without.status} ${without.text}`);
    const withHeader = await api('GET', '/pools');
    assert.equal(withHeader.status, 200, withHeader.text);
    assert.deepEqual(withHeader.json.value, []);
  }));

  it('creates a pool and its heatmap reaches idle', STEP, step('pool-idle', async () => {
    await apiOK('POST', '/pools', {
      id: POOL_ID,
      displayName: 'Render farm',
      vmSize: 'standard_d2s_v3',
      virtualMachineConfiguration: {
        imageReference: { publisher: 'kiln', offer: 'local', sku: 'host', version: 'latest' },
        nodeAgentSKUId: 'batch.node.kiln.local',
      },
      targetDedicatedNodes: 1,
      taskSlotsPerNode: 2,
    });
    await show('pool');
    // The page refreshes by itself: no reload from here on.
    const idle = page.locator('[data-node-id][data-state="idle"]');
    await idle.first().waitFor({ state: 'visible', timeout: 120_000 });
    const nodes = await nodeStates();
    assert.equal(nodes.length, 1, `one node in the heatmap: ${JSON.stringify(nodes)}`);
    assert.equal(nodes[0].state, 'idle');
    assert.match(`${nodes[0].text} ${nodes[0].label}`, /idle/i, 'the node shows its state as text, not only colour');
    await screenshot('03-pool');
  }));

  it('resizes the pool from the pool page and sees the node count change', STEP, step('resize', async () => {
    await show('pool');
    await poll('1 node in the heatmap', WAIT, async () => (await heatmapNodes().count()) === 1);
    const target = page.getByLabel('Target dedicated nodes').first();
    await target.fill('3');
    await page.getByRole('button', { name: 'Resize', exact: true }).click();
    await poll('3 nodes in the heatmap', 120_000, async () => (await heatmapNodes().count()) === 3);
    await poll('3 idle nodes in the heatmap', 120_000, async () => {
      const states = await nodeStates();
      return states.length === 3 && states.every((n) => n.state === 'idle') ? states : false;
    });
    const pool = await apiOK('GET', `/pools/${POOL_ID}`);
    assert.equal(pool.targetDedicatedNodes, 3, 'the resize reached the API');
    // The pool's own details follow too (allocation state badge back to steady).
    await poll('the API to answer allocationState steady', 120_000, async () =>
      (await apiOK('GET', `/pools/${POOL_ID}`)).allocationState === 'steady');
    const root = page.locator('[data-page="pool"]');
    await poll('the pool page to show allocation state steady', WAIT, async () =>
      (await root.locator('[data-state="resizing"]').count()) === 0 &&
      (await root.locator('[data-state="steady"]').count()) > 0);
  }));

  it('enables, evaluates and disables autoscale with the formula editor', STEP, step('autoscale', async () => {
    const root = await show('pool');
    const formula = root.getByLabel('Autoscale formula');
    await formula.fill('$TargetDedicatedNodes = 3;\n$NodeDeallocationOption = taskcompletion;');
    await root.getByLabel('Evaluation interval').fill('PT5M');
    await root.getByRole('button', { name: 'Enable autoscale' }).click();
    await poll('autoscale on in the API', WAIT, async () => (await apiOK('GET', `/pools/${POOL_ID}`)).enableAutoScale === true);
    await poll('Resize disabled while autoscale is on', WAIT, async () => root.getByRole('button', { name: 'Resize', exact: true }).isDisabled());

    // The editor evaluates a changed formula without applying it.
    await formula.fill('$TargetDedicatedNodes = max(2, 1 + 2);\n$NodeDeallocationOption = taskcompletion;');
    await root.getByRole('button', { name: 'Evaluate' }).click();
    const result = root.locator('[data-testid="autoscale-result"]');
    await poll('the evaluation result', WAIT, async () => /\$TargetDedicatedNodes\s*=\s*3\b/.test(await result.innerText()));
    await screenshot('03-pool-autoscale');
    await formula.fill('$TargetDedicatedNodes = ;');
    await root.getByRole('button', { name: 'Evaluate' }).click();
    await result.getByRole('alert').first().waitFor({ state: 'visible', timeout: WAIT });

    await root.getByRole('button', { name: 'Disable autoscale' }).click();
    await poll('autoscale off in the API', WAIT, async () => (await apiOK('GET', `/pools/${POOL_ID}`)).enableAutoScale === false);
    await poll('Resize enabled again', WAIT, async () => root.getByRole('button', { name: 'Resize', exact: true }).isEnabled());
    await poll('still 3 idle nodes', 120_000, async () => {
      const states = await nodeStates();
      return states.length === 3 && states.every((n) => n.state === 'idle');
    });
  }));

  it('submits a job through the API and watches its progress bar reach 100%', STEP, step('job-progress', async () => {
    await apiOK('POST', '/jobs', { id: JOB_ID, displayName: 'Thumbnails', poolInfo: { poolId: POOL_ID } });
    const res = await apiOK('POST', `/jobs/${JOB_ID}/addtaskcollection`, {
      value: JOB_TASKS.map((id, i) => ({
        id,
        commandLine: `/bin/sh -c 'echo rendering ${id}; ${waitCmd('job')}; echo done ${i + 1}'`,
      })),
    });
    for (const r of res.value) assert.equal(r.status, 'success', JSON.stringify(r));

    const root = await show('job');
    // The tasks wait for the test, so the bar cannot be full yet.
    await poll('some tasks running', WAIT, async () => {
      const counts = await apiOK('GET', `/jobs/${JOB_ID}/taskcounts`);
      return counts.taskCounts.running > 0;
    });
    const before = await progressOf(root);
    assert.ok(before < 100, `progress while the tasks run: ${before}`);

    // The pool page now shows busy nodes: this is the README's heatmap.
    const poolPage = await context.newPage();
    await show('pool', poolPage);
    await poll('running nodes in the heatmap', WAIT, async () => (await nodeStates(poolPage)).some((n) => n.state === 'running'));
    await screenshot('03-pool-running', poolPage);
    const heatmapShot = await screenshot('readme-pool-heatmap', poolPage, { fullPage: false, style: NO_TOASTS });
    await poolPage.close();

    release('job');
    await poll('progress bar at 100', 120_000, async () => (await progressOf(root)) === 100);
    const bar = root.getByRole('progressbar').first();
    assert.equal(await bar.getAttribute('aria-valuemin') ?? '0', '0');
    assert.equal(await bar.getAttribute('aria-valuemax') ?? '100', '100');
    // Every task shows in the table, completed.
    for (const id of JOB_TASKS) await root.getByText(id, { exact: true }).first().waitFor({ timeout: WAIT });
    await screenshot('05-job');
    const jobShot = await screenshot('readme-job-page', page, { style: NO_TOASTS });

    if (process.env.KILN_UI_UPDATE_DOCS) {
      fs.mkdirSync(DOCS_IMAGES, { recursive: true });
      fs.copyFileSync(heatmapShot, path.join(DOCS_IMAGES, 'pool-heatmap.png'));
      fs.copyFileSync(jobShot, path.join(DOCS_IMAGES, 'job-page.png'));
      console.log(`# updated ${DOCS_IMAGES}/pool-heatmap.png and job-page.png`);
    }

    // The jobs list has the bar too.
    const jobs = await show('jobs');
    await poll('jobs list progress at 100', WAIT, async () => (await progressOf(rowWith(jobs, JOB_ID))) === 100);
    await screenshot('04-jobs');
  }));

  it('opens a running task and sees its stdout grow live, then download stdout.txt', STEP, step('task-live', async () => {
    await apiOK('POST', `/jobs/${JOB_ID}/tasks`, {
      id: LIVE_TASK_ID,
      commandLine: `/bin/sh -c 'i=1; while [ ! -e ${releaseDir}/live ]; do echo "line $i"; i=$((i+1)); sleep 0.3; done; echo finished'`,
    });
    const root = await show('task');
    const stdout = root.locator('[data-testid="stdout"]');
    await stdout.waitFor({ state: 'visible', timeout: WAIT });
    const first = await poll('stdout with two lines', WAIT, async () => {
      const t = await stdout.innerText();
      return /line 2\b/.test(t) ? t : false;
    });
    const grown = await poll('stdout to grow', WAIT, async () => {
      const t = await stdout.innerText();
      return t.length > first.length && t.startsWith('line 1') ? t : false;
    });
    // The task is still running: it waits for the test.
    const task = await apiOK('GET', `/jobs/${JOB_ID}/tasks/${LIVE_TASK_ID}`);
    assert.equal(task.state, 'running', 'the task was running while its stdout grew');
    assert.ok(grown.split('\n').filter(Boolean).length >= 3, `stdout: ${grown}`);
    await screenshot('06-task-running');

    release('live');
    await poll('"finished" in the live stdout', WAIT, async () => /finished/.test(await stdout.innerText()));
    await poll('the task page shows completed', WAIT, async () => /completed/i.test(await root.innerText()));
    await screenshot('06-task');

    // Its files, downloaded through the page's Download control.
    const row = rowWith(root, 'stdout.txt');
    await row.waitFor({ state: 'visible', timeout: WAIT });
    const { name, text } = await downloadFrom(row);
    assert.match(name, /stdout\.txt$/, `suggested file name ${name}`);
    assert.ok(text.startsWith('line 1\nline 2\n'), `downloaded stdout starts: ${text.slice(0, 40)}`);
    assert.ok(text.endsWith('finished\n'), `downloaded stdout ends: ${text.slice(-40)}`);
    const viaApi = await context.request.get(`${baseURL}/ui/api/jobs/${JOB_ID}/tasks/${LIVE_TASK_ID}/files/stdout.txt?api-version=${API_VERSION}`,
      { headers: { 'X-Kiln-UI': '1' } });
    assert.equal(text, await viaApi.text(), 'the download is the file the API serves');
  }));

  it('a user creates a job, adds a task and reads its output without leaving the dashboard', STEP, step('job-from-ui', async () => {
    await show('overview');
    await page.getByRole('link', { name: 'Jobs', exact: true }).first().click();
    const jobs = page.locator('[data-page="jobs"]');
    await jobs.waitFor({ state: 'visible', timeout: WAIT });
    const create = jobs.getByRole('form', { name: /create a job/i });
    await create.getByLabel('Job ID').fill('hello');
    await create.getByLabel('Pool ID').fill(POOL_ID);
    await create.getByRole('button', { name: 'Create job' }).click();
    const job = page.locator('[data-page="job"]');
    await job.getByText('hello', { exact: true }).first().waitFor({ state: 'visible', timeout: WAIT });

    const add = job.getByRole('form', { name: /add a task/i });
    const summary = job.locator('summary', { hasText: 'Add a task' }).first();
    // The page opens "Add a task" by itself for a job without tasks once it
    // has loaded the task counts (shown in the progress bar).
    await job.getByRole('progressbar').first().waitFor({ state: 'attached', timeout: WAIT });
    if (!(await summary.evaluate((s) => s.parentElement.open))) await summary.click();
    await add.getByLabel('Task ID').waitFor({ state: 'visible', timeout: WAIT });
    await add.getByLabel('Task ID').fill('hello-1');
    await add.getByLabel('Command line').fill(`/bin/sh -c 'echo hello from $AZ_BATCH_NODE_ID'`);
    await add.getByRole('button', { name: 'Add task' }).click();

    const task = page.locator('[data-page="task"]');
    await task.waitFor({ state: 'visible', timeout: WAIT });
    assert.match(page.url(), /#\/jobs\/hello\/tasks\/hello-1$/);
    const stdout = task.locator('[data-testid="stdout"]');
    await poll('the task\'s output on its page', WAIT, async () => /hello from tvmps_\S+/.test(await stdout.innerText()));
    await poll('the task page shows completed', WAIT, async () => (await task.locator('[data-state="completed"]').count()) > 0);
    await screenshot('06-task-from-ui');
  }));

  // taskIds lists the task ids in the job page's task table, in order.
  const taskIds = (root) => root.getByRole('table', { name: 'Tasks' }).locator('tbody tr:not(.empty) td:first-child')
    .evaluateAll((tds) => tds.map((td) => td.innerText.trim()));
  const stateBadgeOf = (root) => root.locator('.kp-stateline [data-state]').first().getAttribute('data-state');

  it('the job page filters tasks by state, result and exit code; Disable and Enable', STEP, step('job-filter', async () => {
    const ids = ['ok-1', 'ok-2', 'ok-3', 'bad-3', 'bad-4'];
    await apiOK('POST', '/jobs', { id: 'sweep', poolInfo: { poolId: POOL_ID } });
    await apiOK('POST', '/jobs/sweep/addtaskcollection', {
      value: ids.map((id) => ({ id, commandLine: `/bin/sh -c 'exit ${id.startsWith('bad-') ? id.slice(4) : 0}'` })),
    });
    await poll('the 5 tasks completed', 120_000, async () =>
      (await apiOK('GET', '/jobs/sweep/taskcounts')).taskCounts.completed === 5);
    await page.goto(`${baseURL}/ui/#/jobs/sweep`);
    const root = page.locator('[data-page="job"]');
    const filter = root.getByRole('search', { name: 'Filter tasks' });
    const same = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
    await poll('all 5 tasks in the table', WAIT, async () => same(await taskIds(root), ids));

    await filter.getByLabel('Exit code').fill('3');
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    await poll('only bad-3 with exit code 3', WAIT, async () => same(await taskIds(root), ['bad-3']));
    await filter.getByRole('button', { name: 'Clear filter' }).click();
    await poll('all tasks again', WAIT, async () => same(await taskIds(root), ids));
    await filter.getByLabel('Result').selectOption('failure');
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    await poll('the failed tasks', WAIT, async () => same(await taskIds(root), ['bad-3', 'bad-4']));
    await screenshot('05-job-filtered');
    await filter.getByRole('button', { name: 'Clear filter' }).click();
    await filter.getByLabel('Task state').selectOption('active');
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    await poll('no active tasks', WAIT, async () => (await taskIds(root)).length === 0 &&
      /no tasks match/i.test(await root.getByRole('table', { name: 'Tasks' }).innerText()));

    await root.getByRole('button', { name: 'Disable', exact: true }).click();
    await poll('the job disabled on the page', WAIT, async () => (await stateBadgeOf(root)) === 'disabled');
    assert.equal((await apiOK('GET', '/jobs/sweep')).state, 'disabled');
    await root.getByRole('button', { name: 'Enable', exact: true }).click();
    await poll('the job active on the page', WAIT, async () => (await stateBadgeOf(root)) === 'active');
    assert.equal((await apiOK('GET', '/jobs/sweep')).state, 'active');
  }));

  it('the job page pages through many tasks; Terminate and Delete', STEP, step('job-paging', async () => {
    // A disabled job keeps its tasks queued, so 120 tasks cost nothing.
    await apiOK('POST', '/jobs', { id: 'backlog', poolInfo: { poolId: POOL_ID } });
    await apiOK('POST', '/jobs/backlog/disable', { disableTasks: 'requeue' });
    const all = Array.from({ length: 120 }, (_, i) => `b-${String(i).padStart(3, '0')}`);
    for (let i = 0; i < all.length; i += 100) {
      await apiOK('POST', '/jobs/backlog/addtaskcollection', {
        value: all.slice(i, i + 100).map((id) => ({ id, commandLine: '/bin/true' })),
      });
    }
    await page.goto(`${baseURL}/ui/#/jobs/backlog`);
    const root = page.locator('[data-page="job"]');
    const pages = [];
    pages.push(await poll('a first page of 50 tasks', WAIT, async () => { const t = await taskIds(root); return t.length === 50 ? t : false; }));
    const next = root.getByRole('button', { name: 'Next page' });
    await next.click();
    pages.push(await poll('a second page of 50 other tasks', WAIT, async () => {
      const t = await taskIds(root);
      return t.length === 50 && !t.some((id) => pages[0].includes(id)) ? t : false;
    }));
    await next.click();
    pages.push(await poll('a last page of 20 tasks', WAIT, async () => { const t = await taskIds(root); return t.length === 20 ? t : false; }));
    assert.deepEqual(pages.flat().sort(), all, 'the three pages hold every task once');
    await poll('Next page disabled on the last page', WAIT, async () => next.isDisabled());
    await root.getByRole('button', { name: 'Previous page' }).click();
    await poll('the second page again', WAIT, async () => JSON.stringify(await taskIds(root)) === JSON.stringify(pages[1]));

    await root.getByRole('button', { name: 'Terminate', exact: true }).click();
    await poll('the job completed on the page', WAIT, async () => (await stateBadgeOf(root)) === 'completed');
    await root.getByRole('button', { name: 'Delete', exact: true }).click();
    await root.getByRole('button', { name: 'Confirm delete' }).click();
    await page.locator('[data-page="jobs"]').waitFor({ state: 'visible', timeout: WAIT });
    await poll('the job gone from the API', 120_000, async () => {
      const r = await api('GET', '/jobs/backlog');
      return r.status === 404 || (r.json && r.json.state === 'deleting');
    });
  }));

  it('creates a pool with a start task from the pools page; a failed start task shows on its node; Delete pool', STEP, step('start-task', async () => {
    const pools = await show('pools');
    const form = pools.getByRole('form', { name: 'Create a pool' });
    await form.getByLabel('Pool ID').fill('prep');
    await form.getByLabel('Dedicated nodes').fill('1');
    await form.getByLabel('Start task command line').fill(`/bin/sh -c 'echo prepared on $AZ_BATCH_NODE_ID; exit 1'`);
    await form.getByRole('button', { name: 'Create pool' }).click();
    await pools.getByRole('link', { name: 'prep', exact: true }).first().click();
    const root = page.locator('[data-page="pool"]');
    await root.getByText('prep', { exact: true }).first().waitFor({ timeout: WAIT });
    const failed = root.locator('[data-node-id][data-state="starttaskfailed"]');
    await failed.first().waitFor({ state: 'visible', timeout: 120_000 });
    assert.match(await failed.first().innerText(), /start task failed/i, 'the state as text');
    await failed.first().click();
    const out = root.locator('[data-testid="starttask-stdout"]');
    await poll('the start task output of the node', WAIT, async () => /prepared on tvmps_\S+/.test(await out.innerText()));
    await screenshot('03-pool-starttaskfailed');

    await root.getByRole('button', { name: 'Delete pool' }).click();
    await root.getByRole('button', { name: /^confirm/i }).click();
    await page.locator('[data-page="pools"]').waitFor({ state: 'visible', timeout: WAIT });
    await poll('the pool gone from the API', 120_000, async () => {
      const r = await api('GET', '/pools/prep');
      return r.status === 404 || (r.json && r.json.state === 'deleting');
    });
    await poll('the pool gone from the list', 120_000, async () =>
      (await page.locator('[data-page="pools"]').getByRole('link', { name: 'prep', exact: true }).count()) === 0);
  }));

  it('downloads a blob and uploads a file in the storage browser', STEP, step('storage', async () => {
    kiln('storage', 'container', 'create', CONTAINER);
    const src = path.join(tmpRoot, 'upload-src');
    fs.mkdirSync(path.join(src, 'reports'), { recursive: true });
    fs.writeFileSync(path.join(src, BLOB), BLOB_TEXT);
    kiln('storage', 'upload', src, '--container', CONTAINER);
    const listed = kiln('storage', 'list', '--container', CONTAINER, '-o', 'json');
    assert.match(listed, /reports\/summary\.txt/, `blob uploaded: ${listed}`);

    await show('storage');
    await screenshot('09-storage');
    const root = await show('container');
    await screenshot('10-storage-container');
    const { name, text } = await downloadFrom(rowWith(root, 'summary.txt'));
    assert.match(name, /summary\.txt$/, `suggested file name ${name}`);
    assert.equal(text, BLOB_TEXT);

    // Upload from the browser, then the CLI sees the blob.
    const input = root.locator('input[type="file"]').first();
    await input.setInputFiles({ name: 'from-browser.txt', mimeType: 'text/plain', buffer: Buffer.from('uploaded by chromium\n') });
    const submit = root.getByRole('button', { name: /upload/i });
    if (await submit.count()) await submit.first().click();
    await root.getByText('from-browser.txt').first().waitFor({ state: 'visible', timeout: WAIT });
    const out = path.join(tmpRoot, 'download-dst');
    kiln('storage', 'download', out, '--container', CONTAINER, '--prefix', 'from-browser');
    const files = fs.readdirSync(out, { recursive: true }).filter((f) => f.endsWith('from-browser.txt'));
    assert.equal(files.length, 1, `downloaded by the CLI: ${fs.readdirSync(out, { recursive: true })}`);
    assert.equal(fs.readFileSync(path.join(out, files[0]), 'utf8'), 'uploaded by chromium\n');
  }));

  it('lists job schedules and applications', STEP, step('schedules-applications', async () => {
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
    await apiOK('POST', '/jobschedules', {
      id: SCHEDULE_ID,
      displayName: 'Nightly report',
      schedule: { doNotRunUntil: tomorrow, recurrenceInterval: 'P1D' },
      jobSpecification: { poolInfo: { poolId: POOL_ID } },
    });
    const list = await show('schedules');
    await screenshot('07-schedules');
    await list.getByRole('link', { name: SCHEDULE_ID, exact: true }).click();
    const sched = page.locator('[data-page="schedule"]');
    await sched.waitFor({ state: 'visible', timeout: WAIT });
    await poll('the schedule active on its page', WAIT, async () => (await stateBadgeOf(sched)) === 'active');
    await sched.getByRole('button', { name: 'Disable', exact: true }).click();
    await poll('the schedule disabled on its page', WAIT, async () => (await stateBadgeOf(sched)) === 'disabled');
    assert.equal((await apiOK('GET', `/jobschedules/${SCHEDULE_ID}`)).state, 'disabled');
    await sched.getByRole('button', { name: 'Enable', exact: true }).click();
    await poll('the schedule active again', WAIT, async () => (await stateBadgeOf(sched)) === 'active');
    await screenshot('07-schedule');

    const zip = path.join(tmpRoot, 'tools.zip');
    execFileSync('zip', ['-q', '-j', zip, '/bin/true'], { cwd: tmpRoot });
    kiln('application', 'create', APP_ID, '--display-name', 'FFmpeg tools');
    kiln('application', 'package', 'upload', APP_ID, '6.1', zip, '--default');
    const root = await show('applications');
    await root.getByText('6.1').first().waitFor({ state: 'visible', timeout: WAIT });
    await screenshot('08-applications');
  }));

  it('the overview and pools pages show the account at a glance', STEP, step('overview', async () => {
    const overview = await show('overview');
    // Nodes by state and jobs by state: three idle nodes, one job.
    await poll('the overview counts 3 nodes', WAIT, async () => /\b3\b/.test(await overview.innerText()));
    const history = await context.request.get(`${baseURL}/ui/history`);
    assert.equal(history.status(), 200);
    const samples = (await history.json()).samples;
    assert.ok(Array.isArray(samples) && samples.length >= 1, `history samples: ${JSON.stringify(samples)}`);
    await screenshot('01-overview');
    const pools = await show('pools');
    await rowWith(pools, POOL_ID).waitFor({ state: 'visible', timeout: WAIT });
    await screenshot('02-pools');
  }));

  it('is keyboard navigable: Tab reaches the navigation links and the buttons', STEP, step('keyboard', async () => {
    await show('pool');
    await page.evaluate(() => document.activeElement && document.activeElement.blur && document.activeElement.blur());
    const seen = [];
    const routes = ['#/overview', '#/pools', '#/jobs', '#/schedules', '#/applications', '#/storage'];
    const done = () => routes.every((r) => seen.some((f) => f && f.href === r)) &&
      seen.some((f) => f && (f.tag === 'button' || f.role === 'button') && /^resize$/i.test(f.name));
    for (let i = 0; i < 250 && !done(); i++) { // the focus order wraps round to the top
      await page.keyboard.press('Tab');
      seen.push(await page.evaluate(() => {
        const e = document.activeElement;
        if (!e || e === document.body) return null;
        const style = getComputedStyle(e);
        return {
          tag: e.tagName.toLowerCase(),
          role: e.getAttribute('role') || '',
          href: e.getAttribute('href') || '',
          name: (e.getAttribute('aria-label') || e.innerText || e.value || '').trim().slice(0, 60),
          outline: style.outlineStyle !== 'none' || style.boxShadow !== 'none',
        };
      }));
    }
    const focused = seen.filter(Boolean);
    fs.writeFileSync(path.join(ARTIFACTS, 'keyboard-focus-order.json'), JSON.stringify(focused, null, 2));
    const hrefs = new Set(focused.map((f) => f.href));
    for (const route of routes) {
      assert.ok(hrefs.has(route), `Tab reaches the ${route} link; focus order in ${ARTIFACTS}/keyboard-focus-order.json`);
    }
    const buttons = focused.filter((f) => f.tag === 'button' || f.role === 'button');
    assert.ok(buttons.some((b) => /resize/i.test(b.name)), `Tab reaches the Resize button: ${JSON.stringify(buttons)}`);
    assert.ok(focused.every((f) => f.outline), `every focused control shows a focus indicator: ${JSON.stringify(focused.filter((f) => !f.outline))}`);

    // Enter on a focused navigation link follows it.
    await page.locator('a[href="#/jobs"]').first().focus();
    await page.keyboard.press('Enter');
    await page.locator('[data-page="jobs"]').waitFor({ state: 'visible', timeout: WAIT });
  }));

  it('renders every page on a phone-sized screen without horizontal scrolling', STEP, step('phone', async () => {
    const phone = await browser.newContext({
      baseURL, viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
      storageState: await context.storageState(),
    });
    const p = await phone.newPage();
    try {
      const overflow = [];
      for (const key of Object.keys(PAGES)) {
        await show(key, p);
        await sleep(300); // let late rows settle before measuring
        const m = await p.evaluate(() => ({
          doc: document.documentElement.scrollWidth,
          body: document.body.scrollWidth,
          inner: window.innerWidth,
        }));
        await screenshot(`phone-${key}`, p);
        if (Math.max(m.doc, m.body) > m.inner + 1) overflow.push(`${key}: content ${Math.max(m.doc, m.body)}px wide in ${m.inner}px`);
      }
      assert.deepEqual(overflow, [], `pages wider than the phone's screen (screenshots phone-*.png in ${ARTIFACTS})`);
    } finally {
      await phone.close();
    }
  }));

  it('saves a screenshot of every page at 1280x800', STEP, step('screenshots', async () => {
    const order = ['overview', 'pools', 'pool', 'jobs', 'job', 'task', 'schedules', 'schedule', 'applications', 'storage', 'container'];
    for (const [i, key] of order.entries()) {
      await show(key);
      if (key === 'pool') await poll('3 nodes shown', WAIT, async () => (await heatmapNodes().count()) === 3);
      await screenshot(`page-${String(i + 1).padStart(2, '0')}-${key}`);
    }
  }));

  it('every control of every page has an accessible name and every state badge has text', STEP, step('names', async () => {
    const problems = [];
    for (const key of Object.keys(PAGES)) {
      await show(key);
      const found = await page.evaluate(() => {
        const out = [];
        // checkVisibility: not hidden, not in a closed <details>, not display: none.
        const visible = (e) => e.checkVisibility({ contentVisibilityAuto: true, visibilityProperty: true, opacityProperty: false });
        const named = (e) => {
          if ((e.getAttribute('aria-label') || '').trim() || e.getAttribute('aria-labelledby') || (e.getAttribute('title') || '').trim()) return true;
          if (['input', 'select', 'textarea'].includes(e.tagName.toLowerCase())) {
            if (e.type === 'submit' || e.type === 'button') return !!(e.value || '').trim();
            return e.labels && [...e.labels].some((l) => l.textContent.trim());
          }
          return !!(e.innerText || '').trim();
        };
        for (const e of document.querySelectorAll('a[href], button, input:not([type="hidden"]), select, textarea, [role="button"], [role="link"], [tabindex]:not([tabindex="-1"])')) {
          if (visible(e) && !named(e)) out.push(`${e.tagName.toLowerCase()} ${e.outerHTML.slice(0, 120)}`);
        }
        for (const b of document.querySelectorAll('[data-state]')) {
          if (visible(b) && !(b.innerText || '').trim() && !(b.getAttribute('aria-label') || '').trim()) out.push(`state without text: ${b.outerHTML.slice(0, 120)}`);
        }
        return out;
      });
      for (const f of found) problems.push(`${key}: ${f}`);
    }
    assert.deepEqual(problems, [], 'controls without an accessible name');
  }));

  it('signs out', STEP, step('sign-out', async () => {
    await show('overview');
    await page.getByRole('button', { name: /sign out/i }).click();
    await page.locator('[data-page="signin"]').waitFor({ state: 'visible', timeout: WAIT });
    const who = await context.request.get(`${baseURL}/ui/session`);
    assert.equal(who.status(), 401, 'the session is gone');
    const res = await api('GET', '/pools');
    assert.equal(res.status, 401, `the API proxy refuses without a session: ${res.text}`);
  }));

  it('raised no uncaught script errors in the pages', STEP, async () => {
    assert.deepEqual(pageErrors, [], `uncaught errors (all console output in ${consoleLog})`);
  });
});
