/**
 * The tacit server process.
 *
 *   node --import tsx apps/server/src/main.ts            serve (npm start)
 *   node --import tsx apps/server/src/main.ts invite [n]  print n new invite codes (default 1)
 *   node --import tsx apps/server/src/main.ts reset-account <username>
 *                                                         delete an account (lost device) and print
 *                                                         an invite for registering it again
 *   node --import tsx apps/server/src/main.ts backup <file>
 *                                                         copy the SQLite database to <file>, safe
 *                                                         while the server runs
 *   node --import tsx apps/server/src/main.ts admin [--revoke] [<username>]
 *                                                         list admins, name one, or revoke one
 *
 * Configuration is by environment; see docs/OPERATIONS.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { resolve } from 'node:path';
import { inviteLink, username as usernameValidator } from '@tacit/api';
import { BackupError, backupSqlite } from './backup.js';
import { DEFAULT_LIMITS, limitsFromEnv } from './config.js';
import { createInvite, resetAccount as resetAccountWithInvite } from './invites.js';
import { Redis } from 'ioredis';
import { RedisCluster, type Cluster } from './cluster.js';
import { PostgresStore } from './postgres.js';
import { StartupError, connectRedis, postgresFailure } from './startup.js';
import type { Limiters } from './rate.js';
import { RedisLimiters, connectionLeaseMs } from './rate-redis.js';
import { buildServer } from './server.js';
import { parseTrustProxy } from './proxy.js';
import { MIN_METRICS_TOKEN_LENGTH } from './metrics.js';
import { SqliteStore } from './sqlite.js';
import type { BlobStore } from './attachments/blob-store.js';
import { FsBlobStore } from './attachments/fs-blob-store.js';
import { PostgresBlobStore } from './attachments/postgres-blob-store.js';
import type { Store } from './store.js';

const env = process.env;
/** `npm run -w` changes the working directory; INIT_CWD is where the operator ran npm. */
const baseDir = env['INIT_CWD'] ?? process.cwd();
const dataDir = resolve(baseDir, env['TACIT_DATA_DIR'] ?? 'data');
const dbPath = resolve(dataDir, 'tacit.db');
/** Attachment blobs, one file each (single node); with PostgreSQL they live in the database. */
const attachmentDir = resolve(dataDir, 'attachments');
/** The web client's build output in this repository, served at `/` when present. */
const bundledWeb = resolve(import.meta.dirname, '../../web/dist');

/**
 * SQLite in the data directory by default; PostgreSQL + Redis when TACIT_DATABASE_URL is set
 * (then TACIT_REDIS_URL is required too, and nodes sharing them form one cluster). A service that
 * cannot be used ends the process with one line saying which, where and why.
 */
async function openStore(
  withCluster: boolean,
  heartbeatIntervalMs = DEFAULT_LIMITS.heartbeatIntervalMs,
): Promise<{ store: Store; cluster?: Cluster; limiters?: Limiters; describe: string }> {
  const dbUrl = env['TACIT_DATABASE_URL'];
  if (dbUrl === undefined || dbUrl === '') {
    // Message batches commit on a worker thread: fsyncs overlap with socket work.
    const checkpoint = env['TACIT_WAL_CHECKPOINT_INTERVAL_MS'];
    const checkpointIntervalMs = checkpoint === undefined || checkpoint === '' ? undefined : Number(checkpoint);
    if (checkpointIntervalMs !== undefined && (!Number.isSafeInteger(checkpointIntervalMs) || checkpointIntervalMs <= 0)) fail('TACIT_WAL_CHECKPOINT_INTERVAL_MS must be a positive integer');
    return { store: new SqliteStore({ path: dbPath, worker: true, ...(checkpointIntervalMs !== undefined ? { checkpointIntervalMs } : {}) }), describe: `sqlite ${dbPath}` };
  }
  const redisUrl = env['TACIT_REDIS_URL'];
  if (redisUrl === undefined || redisUrl === '') fail('TACIT_DATABASE_URL needs TACIT_REDIS_URL');
  const schema = env['TACIT_DATABASE_SCHEMA'] ?? 'tacit';
  // Redis keys and channels of this deployment: named after its schema (`tacit:` by default), so
  // deployments on different schemas may share one Redis.
  const prefix = `${schema}:`;
  const log = { onError: (line: string) => process.stderr.write(`tacit-server: ${line}\n`), onReady: (line: string) => process.stderr.write(`tacit-server: ${line}\n`) };
  const redis = await connectRedis(redisUrl, log);
  let store: PostgresStore;
  try {
    store = await PostgresStore.open({ pg: { connectionString: dbUrl, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS }, redis, ownsRedis: true, schema, redisPrefix: prefix });
  } catch (e) {
    throw new StartupError(postgresFailure(e, dbUrl));
  }
  const m = store.migration;
  if (m.applied.length > 0) process.stdout.write(`database schema ${schema}: migrated from version ${m.from} to ${m.to}\n`);
  if (!withCluster) return { store, describe: `postgres (schema ${schema}) + redis` };
  const cluster = new RedisCluster(await connectRedis(redisUrl, log), await connectRedis(redisUrl, log, { maxRetriesPerRequest: null }), prefix);
  // Rate and connection limits shared by every node.
  // Its own connection, failing fast while Redis is away (limits then fall back to this node).
  const limiters = new RedisLimiters(await connectRedis(redisUrl, log, { enableOfflineQueue: false, maxRetriesPerRequest: 0 }), {
    prefix,
    connectionLeaseMs: connectionLeaseMs(heartbeatIntervalMs),
    log: log.onError,
  });
  return { store, cluster, limiters, describe: `postgres (schema ${schema}) + redis` };
}

/** Attachment blobs: files under the data directory, or PostgreSQL with TACIT_DATABASE_URL. */
async function openBlobs(): Promise<BlobStore> {
  const dbUrl = env['TACIT_DATABASE_URL'];
  if (dbUrl === undefined || dbUrl === '') return FsBlobStore.open(attachmentDir);
  try {
    return await PostgresBlobStore.open({ pg: { connectionString: dbUrl, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS }, schema: env['TACIT_DATABASE_SCHEMA'] ?? 'tacit' });
  } catch (e) {
    throw new StartupError(postgresFailure(e, dbUrl));
  }
}

/** How long a node waits for a PostgreSQL connection (at start and afterwards) before failing. */
const PG_CONNECT_TIMEOUT_MS = 10_000;

/**
 * The address people open, for invite links: TACIT_PUBLIC_URL when set (behind a proxy or TLS
 * terminator), else this machine on the configured port.
 */
function publicUrl(host: string, port: number, scheme: 'http' | 'https' = tlsConfigured() ? 'https' : 'http'): string {
  const configured = env['TACIT_PUBLIC_URL'];
  if (configured !== undefined && configured !== '') {
    let u: URL;
    try {
      u = new URL(configured);
    } catch {
      fail('TACIT_PUBLIC_URL must be a URL such as https://chat.example.com');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') fail('TACIT_PUBLIC_URL must start with http:// or https://');
    return u.origin + u.pathname.replace(/\/+$/, '');
  }
  const wildcard = host === '0.0.0.0' || host === '::' || host === '';
  const name = wildcard ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return `${scheme}://${name}:${port}`;
}

function tlsConfigured(): boolean {
  return (env['TACIT_TLS_CERT'] ?? '') !== '' || (env['TACIT_TLS_KEY'] ?? '') !== '';
}

/**
 * HTTPS from TACIT_TLS_CERT (PEM certificate chain) and TACIT_TLS_KEY (PEM private key), both
 * or neither. Read at start and again on SIGHUP (after a renewal). A problem is one sentence
 * naming the variable and the reason, never the key's contents: at start it stops the server,
 * on SIGHUP the old certificate stays.
 */
function loadTls(): { cert: Buffer; key: Buffer } | undefined | { problem: string } {
  const certPath = env['TACIT_TLS_CERT'] ?? '';
  const keyPath = env['TACIT_TLS_KEY'] ?? '';
  if (certPath === '' && keyPath === '') return undefined;
  if (certPath === '' || keyPath === '') return { problem: 'TACIT_TLS_CERT and TACIT_TLS_KEY go together: set both (certificate and private key, PEM files) or neither' };
  const read = (name: string, path: string): Buffer | string => {
    try {
      return readFileSync(resolve(baseDir, path));
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      return `cannot read ${name} ${resolve(baseDir, path)} (${typeof code === 'string' ? code : 'unreadable'})`;
    }
  };
  const cert = read('TACIT_TLS_CERT', certPath);
  if (typeof cert === 'string') return { problem: cert };
  const key = read('TACIT_TLS_KEY', keyPath);
  if (typeof key === 'string') return { problem: key };
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    // OpenSSL's reason ("key values mismatch", "no start line"), not the material.
    const reason = e instanceof Error ? e.message.replace(/\s+/g, ' ').slice(0, 120) : 'unusable';
    return { problem: `TACIT_TLS_CERT and TACIT_TLS_KEY are not a usable PEM certificate and matching private key (${reason})` };
  }
  return { cert, key };
}

function readTls(): { cert: Buffer; key: Buffer } | undefined {
  const t = loadTls();
  if (t !== undefined && 'problem' in t) fail(t.problem);
  return t;
}

function configuredPort(): number {
  const port = env['PORT'] === undefined ? 8080 : Number(env['PORT']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('PORT must be 0..65535');
  return port;
}

const days = (ms: number): number => Math.round(ms / 86_400_000);

function fail(message: string): never {
  process.stderr.write(`tacit-server: ${message}\n`);
  process.exit(2);
}

async function invite(args: string[]): Promise<void> {
  const n = args[0] === undefined ? 1 : Number(args[0]);
  if (!Number.isSafeInteger(n) || n < 1 || n > 100) fail('usage: invite [count 1..100]');
  const limits = { ...DEFAULT_LIMITS, ...limitsFromEnv(env) };
  const base = publicUrl(env['HOST'] ?? '0.0.0.0', configuredPort());
  const { store } = await openStore(false);
  try {
    // Codes on stdout (one per line, for scripts); the links to hand out on stderr.
    for (let i = 0; i < n; i++) {
      const code = await createInvite(store, Date.now(), limits.inviteTtlMs);
      process.stdout.write(code + '\n');
      process.stderr.write(`  ${inviteLink(base, code)}\n`);
    }
  } finally {
    await store.close();
  }
  process.stderr.write(`(single use, valid ${days(limits.inviteTtlMs)} days)\n`);
}

/**
 * Frees a username whose devices are lost: removes the account, its devices, keys and queued
 * messages (one transaction), then prints a fresh invite so its owner can register again. Safe
 * while the server runs: a removed device's secret no longer authenticates.
 */
async function resetAccount(args: string[]): Promise<void> {
  const parsed = args.length === 1 ? usernameValidator(args[0]) : undefined;
  if (parsed === undefined || !parsed.ok) fail('usage: reset-account <username>');
  const name = parsed.value;
  const limits = { ...DEFAULT_LIMITS, ...limitsFromEnv(env) };
  const { store } = await openStore(false);
  let r;
  try {
    r = await resetAccountWithInvite(store, name, Date.now(), limits.inviteTtlMs);
  } finally {
    await store.close();
  }
  if (r === undefined) fail(`reset-account: no account "${name}"`);
  const { removed, invite: inv } = r;
  process.stdout.write(
    `reset-account: removed account ${name}: ${removed.devices} device(s), ${removed.preKeys} one-time pre-key(s), ` +
      `${removed.kyberPreKeys} one-time Kyber pre-key(s), ${removed.messages} queued message(s)\n` +
      `invite code (single use, valid ${days(limits.inviteTtlMs)} days): ${inv.code}\n` +
      `link: ${inviteLink(publicUrl(env['HOST'] ?? '0.0.0.0', configuredPort()), inv.code)}\n`,
  );
}

/** `admin`: list admins; `admin <username>`: name one; `admin --revoke <username>`: revoke. */
async function admin(args: string[]): Promise<void> {
  const revoke = args[0] === '--revoke';
  const rest = revoke ? args.slice(1) : args;
  const parsed = rest.length === 1 ? usernameValidator(rest[0]) : undefined;
  if (rest.length > 1 || (parsed !== undefined && !parsed.ok) || (revoke && parsed === undefined)) fail('usage: admin [--revoke] [<username>]');
  const { store } = await openStore(false);
  try {
    if (parsed === undefined) {
      const list = await store.listAccounts(Number.MAX_SAFE_INTEGER);
      const admins = list.accounts.filter((a) => a.admin).map((a) => a.username);
      process.stdout.write(admins.length === 0 ? 'no admins (name one: admin <username>)\n' : admins.join('\n') + '\n');
      return;
    }
    const name = parsed.ok ? parsed.value : '';
    if (!(await store.setAdmin(name, !revoke))) fail(`admin: no account "${name}"`);
    process.stdout.write(revoke ? `admin: ${name} is no longer an admin\n` : `admin: ${name} is an admin\n`);
  } finally {
    await store.close();
  }
}

/** Online backup of the SQLite database (see backup.ts); PostgreSQL has pg_dump. */
async function backup(args: string[]): Promise<void> {
  if (args.length !== 1 || args[0] === '') fail('usage: backup <file>');
  if ((env['TACIT_DATABASE_URL'] ?? '') !== '') fail('backup: the store is PostgreSQL; back it up with pg_dump (docs/OPERATIONS.md)');
  const destination = resolve(baseDir, args[0]!);
  try {
    const r = await backupSqlite(dbPath, destination);
    process.stdout.write(
      `backup: ${destination}: ${r.bytes} bytes, ${r.accounts} account(s), ${r.devices} device(s), ${r.queuedMessages} queued message(s); integrity ok\n`,
    );
  } catch (e) {
    if (e instanceof BackupError) fail(`backup: ${e.message}`);
    throw e;
  }
}

async function serve(): Promise<void> {
  const port = configuredPort();
  const host = env['HOST'] ?? '0.0.0.0';
  const registration = env['TACIT_REGISTRATION'] ?? 'invite';
  if (registration !== 'invite' && registration !== 'open') fail('TACIT_REGISTRATION must be "invite" or "open"');
  const directory = env['TACIT_DIRECTORY'] ?? '';
  if (directory !== '' && directory !== 'on' && directory !== 'off') fail('TACIT_DIRECTORY must be "on" or "off"');
  let limits;
  try {
    limits = limitsFromEnv(env);
  } catch (e) {
    fail((e as Error).message);
  }
  const level = env['TACIT_LOG_LEVEL'] ?? 'info';
  const tls = readTls();
  const metricsToken = env['TACIT_METRICS_TOKEN'] ?? '';
  if (metricsToken !== '' && metricsToken.length < MIN_METRICS_TOKEN_LENGTH) fail(`TACIT_METRICS_TOKEN must be at least ${MIN_METRICS_TOKEN_LENGTH} characters (e.g. openssl rand -hex 24)`);
  let trustProxy;
  try {
    const t = env['TACIT_TRUST_PROXY'] ?? '';
    trustProxy = t === '' ? undefined : parseTrustProxy(t);
  } catch (e) {
    fail((e as Error).message);
  }
  const { store, cluster, limiters, describe } = await openStore(true, limits.heartbeatIntervalMs ?? DEFAULT_LIMITS.heartbeatIntervalMs);
  const blobs = await openBlobs();
  const server = await buildServer({
    store,
    blobs,
    ...(cluster ? { cluster } : {}),
    ...(limiters ? { limiters } : {}),
    registration,
    ...(directory !== '' ? { directory: directory === 'on' } : {}),
    limits,
    logger: level === 'silent' ? false : { level },
    ...(trustProxy ? { trustProxy } : {}),
    ...(tls ? { tls } : {}),
    ...(metricsToken !== '' ? { metricsToken } : {}),
    ...(env['TACIT_STATIC_DIR']
      ? { staticDir: resolve(baseDir, env['TACIT_STATIC_DIR']) }
      : existsSync(resolve(bundledWeb, 'index.html'))
        ? { staticDir: bundledWeb }
        : {}),
  });
  const bound = await server.listen(port, host);
  process.stdout.write(`tacit server on ${tls ? 'https' : 'http'}://${host}:${bound} (data: ${describe}, registration: ${registration})\n`);
  if ((await store.countAccounts()) === 0) {
    // First start (no accounts yet): show the first user how to register at once, apart from
    // the JSON log lines around it (one write, so no log line lands inside the block).
    const base = publicUrl(host, bound);
    const rule = '='.repeat(72);
    const lines = [rule, ' tacit is ready. Nobody has registered yet: the first account becomes the admin.'];
    if (registration === 'invite') {
      const code = await server.createInvite();
      lines.push(
        ` Register in a browser with this invite link (single use, valid ${days(server.limits.inviteTtlMs)} days):`,
        '',
        `   ${inviteLink(base, code)}`,
        '',
        ' or from a terminal:',
        `   npx tacit register <username> --server ${base} --invite ${code}`,
        ` invite code: ${code}`,
      );
    } else {
      lines.push(` Registration is open: open ${base} and pick a username,`, ` or run: npx tacit register <username> --server ${base}`);
    }
    if (env['TACIT_PUBLIC_URL'] === undefined) lines.push(' (links use this machine; set TACIT_PUBLIC_URL to the address people open)');
    lines.push(rule);
    process.stdout.write(lines.join('\n') + '\n');
  }
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (tls) {
    // SIGHUP: read the certificate and key again (a renewal) for new connections; open ones keep theirs.
    process.on('SIGHUP', () => {
      const t = loadTls();
      if (t === undefined || 'problem' in t) {
        process.stderr.write(`tacit-server: certificate not reloaded, the previous one stays: ${t === undefined ? 'TACIT_TLS_CERT and TACIT_TLS_KEY are unset' : t.problem}\n`);
        return;
      }
      (server.app.server as unknown as TlsServer).setSecureContext({ cert: t.cert, key: t.key });
      process.stdout.write('tacit server: certificate reloaded\n');
    });
  }
}

const [cmd, ...rest] = process.argv.slice(2);
try {
  if (cmd === 'invite') await invite(rest);
  else if (cmd === 'reset-account') await resetAccount(rest);
  else if (cmd === 'backup') await backup(rest);
  else if (cmd === 'admin') await admin(rest);
  else if (cmd === undefined || cmd === 'serve') await serve();
  else fail(`unknown command "${cmd}" (commands: serve, invite, reset-account, backup, admin)`);
} catch (e) {
  // One line for the operator, never a stack trace.
  if (e instanceof StartupError) fail(e.message);
  const code = (e as { code?: unknown }).code;
  if (code === 'EADDRINUSE') fail(`port ${env['PORT'] ?? 8080} is already in use`);
  if (code === 'EACCES') fail(`not allowed to listen on port ${env['PORT'] ?? 8080}`);
  fail(`${cmd ?? 'serve'} failed: ${e instanceof Error ? e.message.replace(/\s+/g, ' ') : typeof e}`);
}
