/**
 * What an operator is told when the server cannot start: one line naming the service, where it
 * was looked for (host and port, never a password) and what went wrong, instead of a stack trace.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { SchemaError } from './postgres-migrations.js';

/** Host and port of a service URL, for messages; `undefined` when the URL does not parse. */
export function endpoint(url: string): string | undefined {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}${u.port ? `:${u.port}` : ''}`;
  } catch {
    return undefined;
  }
}

/** Node's network error codes, in words. */
const NETWORK: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

function networkCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in NETWORK) return code;
  // Node reports a failed connection to a name with several addresses as an AggregateError.
  if (e instanceof AggregateError) for (const inner of e.errors) if (networkCode(inner) !== undefined) return networkCode(inner);
  return undefined;
}

/** A failure connecting to or preparing PostgreSQL, as one line. */
export function postgresFailure(e: unknown, url: string): string {
  const where = endpoint(url) ?? 'TACIT_DATABASE_URL';
  if (e instanceof SchemaError) return e.message;
  const net = networkCode(e);
  if (net !== undefined) return `cannot reach PostgreSQL at ${where} (${NETWORK[net]}); check TACIT_DATABASE_URL and that PostgreSQL runs`;
  const err = e as { message?: unknown; severity?: unknown; code?: unknown };
  if (typeof err.severity === 'string' && typeof err.message === 'string') {
    // The server's own words (e.g. `password authentication failed for user "tacit"`, `database
    // "x" does not exist`) name the problem and never contain the password.
    return `PostgreSQL at ${where} refused: ${oneLine(err.message)}${typeof err.code === 'string' ? ` (${err.code})` : ''}; check TACIT_DATABASE_URL`;
  }
  if (e instanceof Error && /timeout/i.test(e.message)) return `cannot reach PostgreSQL at ${where} (timed out); check TACIT_DATABASE_URL and that PostgreSQL runs`;
  return `PostgreSQL at ${where}: ${describe(e)}`;
}

/** Seconds a starting node waits for Redis before giving up. */
export const REDIS_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Connects to Redis, or rejects with one line saying why. Afterwards the connection reconnects by
 * itself; `onError` hears of each lost connection (once per outage) and `onReady` of recoveries.
 */
export async function connectRedis(url: string, log: { onError(line: string): void; onReady(line: string): void }, options: RedisOptions = {}): Promise<Redis> {
  const where = endpoint(url) ?? 'TACIT_REDIS_URL';
  let last: unknown;
  let up = false;
  const r = new Redis(url, { lazyConnect: true, connectTimeout: REDIS_CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 2, ...options });
  r.on('error', (e: unknown) => {
    last = e;
    if (up) {
      up = false;
      log.onError(`redis at ${where}: connection lost (${redisReason(e)}); reconnecting`);
    }
  });
  r.on('ready', () => {
    if (!up && last !== undefined) log.onReady(`redis at ${where}: connected again`);
    up = true;
  });
  try {
    await r.connect();
    up = true;
    return r;
  } catch (e) {
    r.disconnect();
    throw new StartupError(`cannot use Redis at ${where} (${redisReason(last ?? e)}); check TACIT_REDIS_URL and that Redis runs`);
  }
}

function redisReason(e: unknown): string {
  const net = networkCode(e);
  if (net !== undefined) return NETWORK[net]!;
  return describe(e);
}

/** A startup failure already phrased for the operator. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) return oneLine(e.message) || e.name;
  return typeof e;
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();
