/**
 * The README's `npm test` on a machine without PostgreSQL or Redis: their suite is skipped with
 * one line saying what it needs, and nothing else is printed about it (no stream of connection
 * errors); under TACIT_REQUIRE_SERVICES=1 (.ci/run) the same absence fails the run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';

const SUITE = resolve(import.meta.dirname, 'postgres.test.ts');
/** A suite that skips or fails at once is done in seconds; one stuck retrying gets this long. */
const HANG_MS = 60_000;

async function runSuite(env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  // NODE_TEST_CONTEXT would make the child think it runs inside this runner and skip the file.
  const { TACIT_REQUIRE_SERVICES: _, NODE_TEST_CONTEXT: __, ...base } = process.env;
  // Port 1 on loopback: nothing listens there, the probe is refused at once.
  const proc = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', SUITE], {
    env: { ...base, TACIT_TEST_PG_PORT: '1', TACIT_TEST_REDIS_URL: 'redis://127.0.0.1:1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  // A suite that keeps retrying its connections never exits: stop it and report that.
  const guard = setTimeout(() => {
    out += '\n(the suite did not finish; killed)';
    proc.kill('SIGKILL');
  }, HANG_MS);
  const [code] = (await once(proc, 'exit')) as [number | null];
  clearTimeout(guard);
  return { code, out };
}

test('without PostgreSQL and Redis the suite is skipped with one line naming both and how to run it', async () => {
  const r = await runSuite({});
  assert.equal(r.code, 0, r.out);
  const skips = r.out.split('\n').filter((l) => l.includes('# SKIP'));
  assert.equal(skips.length, 1, r.out);
  assert.match(skips[0]!, /needs PostgreSQL on 127\.0\.0\.1:1 .* and Redis on 127\.0\.0\.1:1; .*\.ci\/run/);
  assert.match(r.out, /# skipped 1/);
  assert.match(r.out, /# fail 0/);
  assert.doesNotMatch(r.out, /ECONNREFUSED|ioredis/i);
});

test('with TACIT_REQUIRE_SERVICES=1 the same absence fails', async () => {
  const r = await runSuite({ TACIT_REQUIRE_SERVICES: '1' });
  assert.notEqual(r.code, 0);
  assert.match(r.out, /# fail 1/);
  assert.match(r.out, /required here \(TACIT_REQUIRE_SERVICES=1\)/);
});
