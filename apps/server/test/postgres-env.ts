/**
 * The PostgreSQL and Redis that multi-node tests use: PostgreSQL at 127.0.0.1:5432 (trust auth,
 * database `test`, or TACIT_TEST_PG_*) and Redis at 127.0.0.1:6379 (or TACIT_TEST_REDIS_URL).
 * Every test gets its own schema and Redis key prefix (the services are shared), dropped by
 * `dropSchemas` at the end of the file.
 *
 *   const test = await testWithServices('my.test.ts');   // instead of node:test's `test`
 */
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import pg from 'pg';
import { Redis } from 'ioredis';
import { PostgresStore, type NewDevice } from '../src/index.js';
import { externalServices, PG_HOST, PG_PORT, REDIS_URL, skipSuite } from './services.js';

export const pgConfig: pg.PoolConfig = {
  host: PG_HOST,
  port: PG_PORT,
  database: process.env['TACIT_TEST_PG_DATABASE'] ?? 'test',
  user: process.env['TACIT_TEST_PG_USER'] ?? 'postgres',
  max: 8,
};
export const redisUrl = REDIS_URL;

/**
 * node:test's `test` when PostgreSQL and Redis answer. Otherwise the suite is the one line of
 * services.ts (a skip, or a failure under TACIT_REQUIRE_SERVICES=1) and the returned function
 * defines nothing.
 */
export async function testWithServices(suite: string): Promise<typeof test> {
  const services = await externalServices();
  if (!services.skip) return test;
  skipSuite(suite, services.reason);
  return (() => undefined) as unknown as typeof test;
}

/** `postgres://…` for a server process (main.ts) on the test database. */
export const databaseUrl = `postgres://${pgConfig.user}@${pgConfig.host}:${pgConfig.port}/${pgConfig.database}`;

const schemas: string[] = [];

/** A fresh schema name (not created), dropped by `dropSchemas`. */
export function newSchema(): string {
  const schema = `tacit_test_${randomBytes(6).toString('hex')}`;
  schemas.push(schema);
  return schema;
}

/** A store on `schema` (default: a fresh one) with its own Redis connection and key prefix. */
export function openStore(schema = newSchema(), pool: Partial<pg.PoolConfig> = {}): Promise<PostgresStore> {
  return PostgresStore.open({ pg: { ...pgConfig, ...pool }, redis: new Redis(redisUrl), ownsRedis: true, schema, redisPrefix: `${schema}:` });
}

/** Runs `fn` with a plain client on the test database. */
export async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(pgConfig);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Drops every schema made here and the Redis keys under its prefix. */
export async function dropSchemas(): Promise<void> {
  if (schemas.length === 0) return;
  await withClient(async (c) => {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  });
  const r = new Redis(redisUrl);
  try {
    for (const s of schemas) {
      const keys = await r.keys(`${s}:*`);
      if (keys.length > 0) await r.del(...keys);
    }
  } finally {
    r.disconnect();
  }
  schemas.length = 0;
}

/** A device record with placeholder keys, for tests of the store itself (no signatures checked there). */
export function placeholderDevice(): NewDevice {
  const k = { keyId: 1, publicKey: new Uint8Array(33), signature: new Uint8Array(64) };
  return {
    registrationId: 1,
    secretSalt: new Uint8Array(16),
    secretHash: new Uint8Array(32),
    keys: { signedPreKey: k, kyberLastResortKey: { ...k, publicKey: new Uint8Array(1569) }, preKeys: [], kyberPreKeys: [] },
  };
}
