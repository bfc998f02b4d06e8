// Helpers shared by the Node test suites (tests/js, tests/ui): a free port,
// polling without timed assertions, and the kiln binary under test. Node's
// standard library only, so each suite requires it by relative path.
'use strict';

const { execFileSync } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const REPO_ROOT = path.resolve(__dirname, '..', '..');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// poll calls fn until it returns a truthy value or timeoutMs passes; the last
// value (or error) is reported on timeout.
async function poll(what, timeoutMs, fn, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.stack : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${detail}`);
    }
    await sleep(intervalMs);
  }
}

// kilnBin is $KILN_BIN, or kiln built from this checkout into dir.
function kilnBin(dir) {
  if (process.env.KILN_BIN) return process.env.KILN_BIN;
  const out = path.join(dir, 'kiln');
  execFileSync('go', ['build', '-o', out, './cmd/kiln'], { cwd: REPO_ROOT, stdio: 'inherit' });
  return out;
}

module.exports = { REPO_ROOT, freePort, sleep, poll, kilnBin };
