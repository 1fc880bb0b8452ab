/**
 * The PostgreSQL + Redis suites need both services. On a machine without them (a newcomer's
 * laptop running the README's `npm test`) those suites are skipped with one line saying what
 * they need; where they must run (`.ci/run` sets TACIT_REQUIRE_SERVICES=1, after starting both),
 * their absence fails the run instead.
 *
 *   const services = await externalServices();
 *   if (services.skip) skipSuite('postgres.test.ts', services.reason);  // and define nothing else
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';

export const PG_HOST = process.env['TACIT_TEST_PG_HOST'] ?? '127.0.0.1';
export const PG_PORT = Number(process.env['TACIT_TEST_PG_PORT'] ?? 5432);
export const REDIS_URL = process.env['TACIT_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** How long a probe waits for a TCP connection. Loopback answers at once or refuses at once. */
const PROBE_TIMEOUT_MS = 2_000;

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), PROBE_TIMEOUT_MS);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export type Services = { skip: false } | { skip: true; reason: string };

/** Probes PostgreSQL and Redis once; says what is missing. */
export async function externalServices(): Promise<Services> {
  const redis = new URL(REDIS_URL);
  const [pgUp, redisUp] = await Promise.all([reachable(PG_HOST, PG_PORT), reachable(redis.hostname, Number(redis.port || 6379))]);
  if (pgUp && redisUp) return { skip: false };
  const missing = [
    ...(pgUp ? [] : [`PostgreSQL on ${PG_HOST}:${PG_PORT} (trust auth, database "test")`]),
    ...(redisUp ? [] : [`Redis on ${redis.hostname}:${redis.port || 6379}`]),
  ];
  return {
    skip: true,
    reason: `needs ${missing.join(' and ')}; start them (e.g. apt-get install postgresql redis-server) and run npm test again, or run .ci/run, which starts both`,
  };
}

/**
 * Registers the one line that stands for a skipped suite — or, under TACIT_REQUIRE_SERVICES=1,
 * a failing test: where the services are required, missing them is an error, never a skip.
 */
export function skipSuite(suite: string, reason: string): void {
  if (process.env['TACIT_REQUIRE_SERVICES'] === '1') {
    test(`${suite}: PostgreSQL and Redis are required here (TACIT_REQUIRE_SERVICES=1)`, () => assert.fail(reason));
  } else {
    test(`${suite}: the PostgreSQL + Redis suites`, { skip: reason }, () => undefined);
  }
}
