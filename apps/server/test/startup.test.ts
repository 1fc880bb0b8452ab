/**
 * Starting server processes on PostgreSQL + Redis: every failure is one line on stderr and exit
 * code 2 (no stack trace, no password); three nodes started at once on an empty database all serve.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { testWithServices, databaseUrl, dropSchemas, newSchema, openStore, pgConfig, redisUrl, withClient } from './postgres-env.js';

const test = await testWithServices('startup.test.ts');
import { closedPort, runMain, startServer, stopServer } from './processes.js';

after(dropSchemas);

const PASSWORD = 'hunter2-not-printed';

/** Exit code 2, nothing on stdout about listening, and exactly one line on stderr. */
async function failsWithOneLine(env: Record<string, string>, expected: RegExp): Promise<void> {
  const r = await runMain([], env);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.includes('[WARN]'));
  assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, expected);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  assert.ok(!r.stderr.includes(PASSWORD) && !r.stdout.includes(PASSWORD), 'the password is never printed');
  assert.doesNotMatch(r.stdout, /tacit server on/);
}

test('startup: PostgreSQL unreachable', async () => {
  const port = await closedPort();
  await failsWithOneLine(
    { TACIT_DATABASE_URL: `postgres://tacit:${PASSWORD}@127.0.0.1:${port}/test`, TACIT_REDIS_URL: redisUrl, TACIT_DATABASE_SCHEMA: newSchema() },
    new RegExp(`^tacit-server: cannot reach PostgreSQL at 127\\.0\\.0\\.1:${port} \\(connection refused\\); check TACIT_DATABASE_URL`),
  );
});

test('startup: PostgreSQL refuses the credentials', async () => {
  await failsWithOneLine(
    { TACIT_DATABASE_URL: `postgres://no_such_role_tacit:${PASSWORD}@${pgConfig.host}:${pgConfig.port}/${pgConfig.database}`, TACIT_REDIS_URL: redisUrl, TACIT_DATABASE_SCHEMA: newSchema() },
    /^tacit-server: PostgreSQL at [^ ]+ refused: .*"no_such_role_tacit".* \(28(000|P01)\); check TACIT_DATABASE_URL$/,
  );
});

test('startup: the database does not exist', async () => {
  await failsWithOneLine(
    { TACIT_DATABASE_URL: `postgres://${pgConfig.user}@${pgConfig.host}:${pgConfig.port}/no_such_database_tacit`, TACIT_REDIS_URL: redisUrl },
    /^tacit-server: PostgreSQL at [^ ]+ refused: database "no_such_database_tacit" does not exist \(3D000\)/,
  );
});

test('startup: Redis unreachable', async () => {
  const port = await closedPort();
  await failsWithOneLine(
    { TACIT_DATABASE_URL: databaseUrl, TACIT_REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${port}`, TACIT_DATABASE_SCHEMA: newSchema() },
    new RegExp(`^tacit-server: cannot use Redis at 127\\.0\\.0\\.1:${port} \\(connection refused\\); check TACIT_REDIS_URL`),
  );
});

test('startup: a schema newer than the server knows', async () => {
  const schema = newSchema();
  await (await openStore(schema)).close();
  await withClient((c) => c.query(`INSERT INTO ${schema}.schema_version (version, description) VALUES (1000, 'future')`));
  await failsWithOneLine(
    { TACIT_DATABASE_URL: databaseUrl, TACIT_REDIS_URL: redisUrl, TACIT_DATABASE_SCHEMA: schema },
    new RegExp(`^tacit-server: database schema "${schema}" is at version 1000, newer than this server knows \\(\\d+\\); run the newer tacit server`),
  );
});

test('startup: three server processes started at once on an empty database all serve', async () => {
  const env = { TACIT_DATABASE_URL: databaseUrl, TACIT_REDIS_URL: redisUrl, TACIT_DATABASE_SCHEMA: newSchema() };
  const nodes = await Promise.allSettled([startServer(env), startServer(env), startServer(env)]);
  try {
    for (const n of nodes) assert.equal(n.status, 'fulfilled', n.status === 'rejected' ? String(n.reason) : '');
    const up = nodes.flatMap((n) => (n.status === 'fulfilled' ? [n.value] : []));
    for (const n of up) assert.equal((await fetch(`http://127.0.0.1:${n.port}/healthz`)).status, 200);
    // Exactly one of them migrated the empty schema.
    assert.equal(up.filter((n) => /migrated from version 0/.test(n.out())).length, 1);
    for (const n of up) assert.equal(n.err(), '');
  } finally {
    for (const n of nodes) if (n.status === 'fulfilled') assert.equal(await stopServer(n.value), 0);
  }
});
