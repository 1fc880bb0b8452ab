/**
 * The PostgreSQL and Redis that multi-node tests use: PostgreSQL at 127.0.0.1:5432 (trust auth,
 * database `test`, or TACIT_TEST_PG_*) and Redis at 127.0.0.1:6379 (or TACIT_TEST_REDIS_URL).
 * Every test gets its own schema and Redis key prefix (the services are shared), dropped by
 * `dropSchemas` at the end of the file.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { PostgresStore } from '../src/index.js';

export const pgConfig: pg.PoolConfig = {
  host: process.env['TACIT_TEST_PG_HOST'] ?? '127.0.0.1',
  port: Number(process.env['TACIT_TEST_PG_PORT'] ?? 5432),
  database: process.env['TACIT_TEST_PG_DATABASE'] ?? 'test',
  user: process.env['TACIT_TEST_PG_USER'] ?? 'postgres',
  max: 8,
};
export const redisUrl = process.env['TACIT_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

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
