'use strict';
// Drives a real `kiln server` (with its local agent processes) through the
// official npm Azure Batch client, @azure/batch 10.2.0
// (api-version 2022-10-01.16.0), unchanged.
//
// Env: KILN_BIN — path to a built kiln binary. If unset, the test builds one
// with `go build ./cmd/kiln` from the repository root (../.. from here).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { BatchServiceClient, BatchSharedKeyCredentials } = require('@azure/batch');
const { freePort, sleep, poll, kilnBin } = require('../lib/harness.js');

const ACCOUNT = 'kilnjs';
const KEY = Buffer.from('kiln-js-client-test-key-0123456789abcdef-0123456789abcdef').toString('base64');

const POOL_ID = 'js-pool';
const JOB_ID = 'js-job';
const SINGLE_TASK_ID = 'single';
const COLLECTION_SIZE = 50;
const collectionIds = Array.from({ length: COLLECTION_SIZE }, (_, i) => `coll-${String(i).padStart(3, '0')}`);

const STEP = { timeout: 60_000 };
const LONG_STEP = { timeout: 180_000 };

let tmpRoot;
let dataDir;
let server;
let serverExit;
let serverLog;
let bin; // the kiln binary under test
let client;

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

function stopAll() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try { server.kill('SIGKILL'); } catch { /* gone already */ }
  }
  killAgents();
}

// Last resort if the runner dies between before() and after().
process.on('exit', stopAll);

function serverLogTail(n = 6000) {
  try {
    const s = fs.readFileSync(serverLog, 'utf8');
    return s.length > n ? s.slice(-n) : s;
  } catch {
    return '';
  }
}

// expectRestError runs fn, which must reject with an Azure RestError of the
// given HTTP status and Batch error code.
async function expectRestError(fn, statusCode, code) {
  let caught;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected a ${statusCode} ${code} error, got success`);
  assert.equal(caught.statusCode, statusCode, `status of ${caught.message}`);
  assert.equal(caught.code, code, `code of ${caught.message}`);
  return caught;
}

async function readAll(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

describe('kiln through @azure/batch 10.2.0', { timeout: 600_000 }, () => {
  before(async () => {
    tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-js-'));
    dataDir = path.join(tmpRoot, 'data');
    fs.mkdirSync(dataDir);
    bin = kilnBin(tmpRoot);
    const port = await freePort();
    const addr = `127.0.0.1:${port}`;
    serverLog = path.join(tmpRoot, 'server.log');
    const logFd = fs.openSync(serverLog, 'a');
    server = spawn(bin, ['server', '--addr', addr, '--data-dir', dataDir, '--heartbeat-interval', '2s'], {
      env: { ...process.env, KILN_ACCOUNT_NAME: ACCOUNT, KILN_ACCOUNT_KEY: KEY },
      stdio: ['ignore', logFd, logFd],
    });
    fs.closeSync(logFd);
    serverExit = new Promise((resolve) => server.once('exit', (code, sig) => resolve({ code, sig })));
    const url = `http://${addr}`;
    await poll('GET /healthz', 30_000, async () => {
      if (server.exitCode !== null) throw new Error(`kiln server exited with ${server.exitCode}:\n${serverLogTail()}`);
      const res = await fetch(`${url}/healthz`);
      return res.status === 200;
    }, 50);
    client = new BatchServiceClient(new BatchSharedKeyCredentials(ACCOUNT, KEY), url);
  }, { timeout: 300_000 });

  after(async () => {
    stopAll();
    if (server) await Promise.race([serverExit, sleep(5_000)]);
    if (process.env.KILN_JS_KEEP_TMP) {
      console.log(`kept ${tmpRoot}`);
    } else if (tmpRoot) {
      fs.rmSync(tmpRoot, { recursive: true, force: true });
    }
  });

  it('adds a pool of 2 nodes with 2 slots', STEP, async () => {
    const res = await client.pool.add({
      id: POOL_ID,
      vmSize: 'standard_d2s_v3',
      virtualMachineConfiguration: {
        imageReference: { publisher: 'kiln', offer: 'local', sku: 'host', version: 'latest' },
        nodeAgentSKUId: 'batch.node.kiln.local',
      },
      targetDedicatedNodes: 2,
      taskSlotsPerNode: 2,
    });
    assert.equal(res._response.status, 201);
  });

  it('brings 2 idle nodes up (pool.get, computeNode.list)', LONG_STEP, async () => {
    const pool = await poll('pool steady with 2 dedicated nodes', 120_000, async () => {
      const p = await client.pool.get(POOL_ID);
      return p.allocationState === 'steady' && p.currentDedicatedNodes === 2 ? p : false;
    });
    assert.equal(pool.id, POOL_ID);
    assert.equal(pool.taskSlotsPerNode, 2);
    assert.equal(pool.vmSize.toLowerCase(), 'standard_d2s_v3');
    assert.equal(pool.virtualMachineConfiguration.nodeAgentSKUId, 'batch.node.kiln.local');

    const nodes = await poll('2 idle nodes', 120_000, async () => {
      const list = await client.computeNode.list(POOL_ID);
      const idle = list.filter((n) => n.state === 'idle');
      return idle.length === 2 ? list : false;
    });
    assert.equal(nodes.length, 2);
    assert.notEqual(nodes[0].id, nodes[1].id);
    for (const n of nodes) assert.ok(n.id, 'node has an id');
  });

  it('pool.exists answers true for the pool and false for a missing one', STEP, async () => {
    const yes = await client.pool.exists(POOL_ID);
    assert.equal(yes.body, true);
    const no = await client.pool.exists('no-such-pool');
    assert.equal(no.body, false);
  });

  it('pool.list includes the pool', STEP, async () => {
    const pools = await client.pool.list();
    assert.ok(Array.isArray(pools));
    const ids = pools.map((p) => p.id);
    assert.ok(ids.includes(POOL_ID), `pool.list ids: ${ids}`);
  });

  it('pool.get of a missing pool fails with 404 PoolNotFound', STEP, async () => {
    await expectRestError(() => client.pool.get('no-such-pool'), 404, 'PoolNotFound');
  });

  it('job.add creates a job on the pool', STEP, async () => {
    const res = await client.job.add({ id: JOB_ID, poolInfo: { poolId: POOL_ID } });
    assert.equal(res._response.status, 201);
    const job = await client.job.get(JOB_ID);
    assert.equal(job.id, JOB_ID);
    assert.equal(job.poolInfo.poolId, POOL_ID);
    assert.equal(job.state, 'active');
  });

  it('job.add with a duplicate id fails with 409 JobExists', STEP, async () => {
    await expectRestError(() => client.job.add({ id: JOB_ID, poolInfo: { poolId: POOL_ID } }), 409, 'JobExists');
  });

  it('task.add adds a single task', STEP, async () => {
    const res = await client.task.add(JOB_ID, {
      id: SINGLE_TASK_ID,
      commandLine: "/bin/sh -c 'echo $AZ_BATCH_TASK_ID'",
    });
    assert.equal(res._response.status, 201);
  });

  it(`task.addCollection adds ${COLLECTION_SIZE} tasks`, STEP, async () => {
    const res = await client.task.addCollection(JOB_ID, collectionIds.map((id) => ({
      id,
      commandLine: "/bin/sh -c 'echo $AZ_BATCH_TASK_ID'",
    })));
    assert.equal(res._response.status, 200);
    assert.equal(res.value.length, COLLECTION_SIZE);
    for (const r of res.value) {
      assert.equal(r.status, 'success', `add of ${r.taskId}: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(res.value.map((r) => r.taskId).sort(), [...collectionIds].sort());
  });

  it('job.getTaskCounts reaches 51 completed, 51 succeeded', LONG_STEP, async () => {
    const total = COLLECTION_SIZE + 1;
    const counts = await poll(`${total} completed tasks`, 150_000, async () => {
      const r = await client.job.getTaskCounts(JOB_ID);
      return r.taskCounts.completed === total ? r : false;
    }, 500);
    assert.equal(counts.taskCounts.succeeded, total);
    assert.equal(counts.taskCounts.failed, 0);
    assert.equal(counts.taskCounts.active, 0);
    assert.equal(counts.taskCounts.running, 0);
    assert.ok(counts.taskSlotCounts, 'taskSlotCounts present');
    assert.equal(counts.taskSlotCounts.completed, total);
  });

  it('task.list pages completed tasks 10 at a time (list + listNext)', STEP, async () => {
    const options = { taskListOptions: { filter: "state eq 'completed'", maxResults: 10 } };
    let page = await client.task.list(JOB_ID, options);
    const seen = [];
    let pages = 0;
    for (;;) {
      pages++;
      assert.ok(page.length <= 10, `page ${pages} has ${page.length} tasks`);
      for (const t of page) {
        assert.equal(t.state, 'completed', `task ${t.id} state`);
        seen.push(t.id);
      }
      if (!page.odatanextLink) break;
      assert.ok(pages < 20, 'too many pages');
      page = await client.task.listNext(page.odatanextLink);
    }
    const expected = [SINGLE_TASK_ID, ...collectionIds].sort();
    assert.deepEqual([...seen].sort(), expected);
    assert.equal(new Set(seen).size, seen.length, 'no task listed twice');
    assert.ok(pages >= 6, `expected at least 6 pages, got ${pages}`);
  });

  it('task.get returns a completed, successful task', STEP, async () => {
    const t = await client.task.get(JOB_ID, collectionIds[7]);
    assert.equal(t.id, collectionIds[7]);
    assert.equal(t.state, 'completed');
    assert.equal(t.commandLine, "/bin/sh -c 'echo $AZ_BATCH_TASK_ID'");
    assert.equal(t.executionInfo.exitCode, 0);
    assert.equal(t.executionInfo.result, 'success');
    assert.ok(t.nodeInfo && t.nodeInfo.nodeId, 'task ran on a node');
    assert.equal(t.nodeInfo.poolId, POOL_ID);
  });

  it('file.getFromTask streams stdout.txt holding the task id', STEP, async () => {
    for (const id of [SINGLE_TASK_ID, collectionIds[0], collectionIds[COLLECTION_SIZE - 1]]) {
      const res = await client.file.getFromTask(JOB_ID, id, 'stdout.txt');
      assert.equal(res._response.status, 200);
      assert.ok(res.readableStreamBody, 'readableStreamBody present');
      const text = await readAll(res.readableStreamBody);
      assert.equal(text.trim(), id);
    }
  });

  it('file.listFromTask lists stdout.txt and stderr.txt', STEP, async () => {
    const id = collectionIds[3];
    const files = await client.file.listFromTask(JOB_ID, id, { fileListFromTaskOptions: { recursive: true } });
    const names = files.map((f) => f.name);
    assert.ok(names.includes('stdout.txt'), `files: ${names}`);
    assert.ok(names.includes('stderr.txt'), `files: ${names}`);
    const stdout = files.find((f) => f.name === 'stdout.txt');
    assert.equal(stdout.isDirectory, false);
    assert.equal(stdout.properties.contentLength, Buffer.byteLength(`${id}\n`));
  });

  // kiln runs the CLI against the test server (storage and applications).
  const kiln = (...args) => execFileSync(bin, args, {
    env: { ...process.env, KILN_DATA_DIR: dataDir, KILN_URL: '', KILN_ACCOUNT_NAME: '', KILN_ACCOUNT_KEY: '' },
    encoding: 'utf8',
  });

  it('application.list and application.get answer as Azure does', STEP, async () => {
    const zip = path.join(tmpRoot, 'tool.zip');
    execFileSync('zip', ['-q', '-j', zip, '/bin/true'], { cwd: tmpRoot });
    kiln('application', 'create', 'js-tool', '--display-name', 'JS tool');
    kiln('application', 'package', 'upload', 'js-tool', '1.0', zip, '--default');
    const apps = await client.application.list();
    assert.deepEqual(apps.map((a) => a.id), ['js-tool']);
    const app = await client.application.get('js-tool');
    assert.equal(app.displayName, 'JS tool');
    assert.deepEqual(app.versions, ['1.0']);
    await expectRestError(() => client.application.get('no-such-app'), 404, 'ApplicationNotFound');
  });

  it('a task with storage resource files, an application package and output files', LONG_STEP, async () => {
    kiln('storage', 'container', 'create', 'js-in');
    kiln('storage', 'container', 'create', 'js-out');
    const input = path.join(tmpRoot, 'input.txt');
    fs.writeFileSync(input, 'from storage\n');
    kiln('storage', 'upload', input, '--container', 'js-in', '--prefix', 'data/');
    const outUrl = kiln('storage', 'url', '--container', 'js-out', '--permissions', 'rwcl').trim();
    const id = 'storage-task';
    await client.task.add(JOB_ID, {
      id,
      commandLine: "/bin/sh -c 'test -x \"$AZ_BATCH_APP_PACKAGE_js_tool/true\" && tr a-z A-Z < in/data/input.txt > result.txt'",
      resourceFiles: [{ autoStorageContainerName: 'js-in', blobPrefix: 'data/', filePath: 'in' }],
      applicationPackageReferences: [{ applicationId: 'js-tool' }],
      outputFiles: [{
        filePattern: 'result.txt',
        destination: { container: { containerUrl: outUrl, path: 'js/result.txt' } },
        uploadOptions: { uploadCondition: 'taskSuccess' },
      }],
    });
    const t = await poll('storage task completed', 60_000, async () => {
      const got = await client.task.get(JOB_ID, id);
      return got.state === 'completed' ? got : false;
    });
    assert.equal(t.executionInfo.result, 'success', JSON.stringify(t.executionInfo));
    assert.equal(t.resourceFiles[0].autoStorageContainerName, 'js-in');
    const dest = path.join(tmpRoot, 'downloaded');
    kiln('storage', 'download', dest, '--container', 'js-out');
    assert.equal(fs.readFileSync(path.join(dest, 'js', 'result.txt'), 'utf8'), 'FROM STORAGE\n');
  });

  it('task.terminate stops a running task', LONG_STEP, async () => {
    const id = 'long-running';
    await client.task.add(JOB_ID, { id, commandLine: "/bin/sh -c 'sleep 300'" });
    await poll('long task running', 60_000, async () => (await client.task.get(JOB_ID, id)).state === 'running');
    const res = await client.task.terminate(JOB_ID, id);
    assert.equal(res._response.status, 204);
    const t = await poll('terminated task completed', 60_000, async () => {
      const got = await client.task.get(JOB_ID, id);
      return got.state === 'completed' ? got : false;
    });
    assert.equal(t.executionInfo.result, 'failure');
    assert.ok(t.executionInfo.failureInfo, 'failureInfo set');
    assert.equal(t.executionInfo.failureInfo.code, 'TaskEnded');
  });

  it('job.get with $expand=stats, job.getAllLifetimeStatistics and pool.getAllLifetimeStatistics', STEP, async () => {
    assert.equal((await client.job.get(JOB_ID)).stats, undefined, 'no stats without $expand');
    const job = await client.job.get(JOB_ID, { jobGetOptions: { expand: 'stats' } });
    const st = job.stats;
    assert.ok(st, 'stats with $expand=stats');
    assert.ok(st.numSucceededTasks >= 51, `numSucceededTasks ${st.numSucceededTasks}`);
    assert.ok(st.numFailedTasks >= 1, `numFailedTasks ${st.numFailedTasks} (the terminated task)`);
    assert.match(st.wallClockTime, /^P/);
    assert.equal(st.waitTime, 'PT0S');
    const life = await client.job.getAllLifetimeStatistics();
    assert.match(life.url, /\/lifetimejobstats$/);
    assert.ok(life.numSucceededTasks >= st.numSucceededTasks, `lifetime numSucceededTasks ${life.numSucceededTasks}`);
    assert.match(life.waitTime, /^P/);
    const pools = await client.pool.getAllLifetimeStatistics();
    assert.match(pools.url, /\/lifetimepoolstats$/);
    assert.match(pools.usageStats.dedicatedCoreTime, /^P/);
    assert.ok(pools.usageStats.dedicatedCoreTime !== 'PT0S', 'two dedicated nodes have been in the pool');
    assert.equal(typeof pools.resourceStats.diskWriteIOps, 'number');
  });

  it('jobSchedule: add, get, exists, list, a run-once job with a task, listFromJobSchedule, disable, enable, terminate, delete', LONG_STEP, async () => {
    const SCHED_ID = 'js-sched';
    const add = await client.jobSchedule.add({
      id: SCHED_ID,
      schedule: { doNotRunUntil: new Date(Date.now() + 1000) },
      jobSpecification: { poolInfo: { poolId: POOL_ID } },
      metadata: [{ name: 'client', value: 'js' }],
    });
    assert.equal(add._response.status, 201);
    const sched = await client.jobSchedule.get(SCHED_ID);
    assert.equal(sched.state, 'active');
    assert.equal(sched.metadata[0].value, 'js');
    assert.equal((await client.jobSchedule.exists(SCHED_ID)).body, true);
    assert.equal((await client.jobSchedule.exists('no-such-schedule')).body, false);
    assert.ok((await client.jobSchedule.list()).some((js) => js.id === SCHED_ID));
    await expectRestError(() => client.jobSchedule.get('no-such-schedule'), 404, 'JobScheduleNotFound');
    await expectRestError(() => client.jobSchedule.add({ id: 'too-fast', schedule: { recurrenceInterval: 'PT10S' }, jobSpecification: { poolInfo: { poolId: POOL_ID } } }), 400, 'InvalidPropertyValue');

    // Its one job, <schedule>:job-1, runs a task.
    const jobId = `${SCHED_ID}:job-1`;
    await poll('schedule job', 30_000, async () => (await client.job.listFromJobSchedule(SCHED_ID)).some((j) => j.id === jobId));
    await client.task.add(jobId, { id: 'hello', commandLine: "/bin/sh -c 'echo hello from $AZ_BATCH_JOB_ID'" });
    const t = await poll('schedule task completed', 60_000, async () => {
      const got = await client.task.get(jobId, 'hello');
      return got.state === 'completed' ? got : false;
    });
    assert.equal(t.executionInfo.result, 'success');
    assert.equal((await client.jobSchedule.get(SCHED_ID)).executionInfo.recentJob.id, jobId);

    assert.equal((await client.jobSchedule.disable(SCHED_ID))._response.status, 204);
    assert.equal((await client.jobSchedule.get(SCHED_ID)).state, 'disabled');
    assert.equal((await client.jobSchedule.enable(SCHED_ID))._response.status, 204);
    assert.equal((await client.jobSchedule.terminate(SCHED_ID))._response.status, 202);
    await poll('schedule completed', 30_000, async () => (await client.jobSchedule.get(SCHED_ID)).state === 'completed');
    assert.equal((await client.job.get(jobId)).executionInfo.terminateReason, 'TerminateJobSchedule');
    assert.equal((await client.jobSchedule.deleteMethod(SCHED_ID))._response.status, 202);
    await poll('schedule gone', 30_000, async () => (await client.jobSchedule.exists(SCHED_ID)).body === false);
    await expectRestError(() => client.job.get(jobId), 404, 'JobNotFound');
  });

  it('job.terminate completes the job', STEP, async () => {
    const res = await client.job.terminate(JOB_ID);
    assert.equal(res._response.status, 202);
    const job = await poll('job completed', 30_000, async () => {
      const j = await client.job.get(JOB_ID);
      return j.state === 'completed' ? j : false;
    });
    assert.equal(job.executionInfo.terminateReason, 'UserTerminate');
  });

  it('job.deleteMethod deletes the job', STEP, async () => {
    const res = await client.job.deleteMethod(JOB_ID);
    assert.equal(res._response.status, 202);
    await poll('job gone', 30_000, async () => {
      try {
        await client.job.get(JOB_ID);
        return false;
      } catch (err) {
        if (err.statusCode === 404 && err.code === 'JobNotFound') return true;
        throw err;
      }
    });
  });

  it('pool.deleteMethod deletes the pool', STEP, async () => {
    const res = await client.pool.deleteMethod(POOL_ID);
    assert.equal(res._response.status, 202);
    await poll('pool gone', 45_000, async () => (await client.pool.exists(POOL_ID)).body === false);
    await expectRestError(() => client.pool.get(POOL_ID), 404, 'PoolNotFound');
  });
});
