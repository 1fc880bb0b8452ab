/**
 * Schema management of the PostgreSQL store: concurrent start on an empty database, migration
 * from the first release's schema, refusal of a newer schema, all-or-nothing migrations.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { MIGRATIONS, SCHEMA_VERSION, SchemaError, migrate } from '../src/postgres-migrations.js';
import { testWithServices, dropSchemas, newSchema, openStore, placeholderDevice, withClient } from './postgres-env.js';

const test = await testWithServices('postgres-schema.test.ts');

after(dropSchemas);

const FIRST_RELEASE_DDL = readFileSync(resolve(import.meta.dirname, 'fixtures/postgres-schema-0.sql'), 'utf8');

const versions = (schema: string) =>
  withClient(async (c) => (await c.query(`SELECT version FROM ${schema}.schema_version ORDER BY version`)).rows.map((r: { version: number }) => r.version));

test('postgres schema: three nodes starting at once on an empty database all start; the schema is made once (repeated)', async () => {
  const all = MIGRATIONS.map((m) => m.version);
  for (let round = 0; round < 5; round++) {
    const schema = newSchema();
    const stores = await Promise.all([openStore(schema, { max: 2 }), openStore(schema, { max: 2 }), openStore(schema, { max: 2 })]);
    try {
      const applied = stores.map((s) => s.migration.applied);
      assert.deepEqual(
        applied.filter((a) => a.length > 0),
        [all],
        `round ${round}: exactly one node applies the migrations`,
      );
      for (const s of stores) assert.equal(s.migration.to, SCHEMA_VERSION);
      assert.deepEqual(await versions(schema), all);
      // Every node works on the result.
      for (const [i, s] of stores.entries()) {
        assert.equal(
          await s.createAccount({ username: `n${i}`, identityKey: new Uint8Array(33), createdAt: 1 }, placeholderDevice(), null),
          'ok',
        );
      }
      assert.equal(await stores[0]!.countAccounts(), 3);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  }
});

test('postgres schema: a database made by the first release (no schema version) is migrated, keeping its data', async () => {
  const schema = newSchema();
  await withClient(async (c) => {
    await c.query(`CREATE SCHEMA ${schema}`);
    await c.query(`SET search_path TO ${schema}`);
    await c.query(FIRST_RELEASE_DDL);
    await c.query("INSERT INTO accounts (username, identity_key, created_at) VALUES ('old', '\\x05', 1)");
    await c.query(
      `INSERT INTO devices (account_id, device_id, addr, registration_id, secret_salt, secret_hash, spk_id, spk, spk_sig, kyber_lr_id, kyber_lr, kyber_lr_sig)
       SELECT id, 1, 'old.1', 7, '\\x00', '\\x00', 1, '\\x05', '\\x00', 1, '\\x08', '\\x00' FROM accounts WHERE username = 'old'`,
    );
    for (const body of ['first', 'second']) {
      await c.query(
        "INSERT INTO messages (recipient, sender, sender_device, kind, body, ts, expires_at) VALUES ('old.1', 'ann', 1, 2, $1, 5, 1000000)",
        [Buffer.from(body)],
      );
    }
  });
  const s = await openStore(schema);
  try {
    assert.deepEqual(s.migration, { from: 0, to: SCHEMA_VERSION, applied: MIGRATIONS.map((m) => m.version) });
    assert.deepEqual(await versions(schema), MIGRATIONS.map((m) => m.version));
    // Accounts from before admins existed are not admins (migration 4); the operator names them.
    assert.equal((await s.getAccount('old'))?.admin, false);
    const old = { username: 'old', deviceId: 1 };
    assert.deepEqual((await s.getAccount('old'))?.devices, [{ deviceId: 1, registrationId: 7 }]);
    const before = await s.fetchQueue(old, 0, 10, 0);
    assert.deepEqual(before.map((m) => Buffer.from(m.body).toString()), ['first', 'second']);
    // New messages continue the old ids and queue behind the old ones.
    const [r] = await s.writeBatch([{ to: old, from: { username: 'ann', deviceId: 1 }, kind: 2, body: Buffer.from('third'), timestamp: 6, expiresAt: 1e6 }], [], 10);
    assert.ok(r?.ok && r.id > before[1]!.id);
    assert.deepEqual((await s.fetchQueue(old, 0, 10, 0)).map((m) => Buffer.from(m.body).toString()), ['first', 'second', 'third']);
  } finally {
    await s.close();
  }
  // Opening again applies nothing.
  const again = await openStore(schema);
  assert.deepEqual(again.migration, { from: SCHEMA_VERSION, to: SCHEMA_VERSION, applied: [] });
  await again.close();
});

test('postgres schema: a node refuses a schema newer than it knows, with a message saying so, and changes nothing', async () => {
  const schema = newSchema();
  await (await openStore(schema)).close();
  const future = SCHEMA_VERSION + 1;
  await withClient((c) => c.query(`INSERT INTO ${schema}.schema_version (version, description) VALUES ($1, 'from the future')`, [future]));
  await assert.rejects(openStore(schema), (e: unknown) => {
    assert.ok(e instanceof SchemaError);
    assert.equal(
      e.message,
      `database schema "${schema}" is at version ${future}, newer than this server knows (${SCHEMA_VERSION}); run the newer tacit server (schema changes are forward-only)`,
    );
    return true;
  });
  assert.deepEqual(await versions(schema), [...MIGRATIONS.map((m) => m.version), future]);
});

test('postgres schema: a failing migration changes nothing and is not recorded; the lock is released', async () => {
  const schema = newSchema();
  await (await openStore(schema)).close();
  const broken = [
    ...MIGRATIONS,
    { version: SCHEMA_VERSION + 1, description: 'half', sql: 'CREATE TABLE half_done (x INT); SELECT no_such_function();' },
  ];
  await withClient(async (c) => {
    await assert.rejects(migrate(c, schema, broken), /no_such_function/);
    const t = await c.query('SELECT to_regclass($1) AS t', [`${schema}.half_done`]);
    assert.equal((t.rows[0] as { t: unknown }).t, null, 'the migration rolled back whole');
  });
  assert.deepEqual(await versions(schema), MIGRATIONS.map((m) => m.version));
  // The advisory lock went with the failure: the next start proceeds.
  const s = await openStore(schema);
  assert.deepEqual(s.migration.applied, []);
  await s.close();
});
