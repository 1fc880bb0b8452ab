/**
 * Schema management for the PostgreSQL store: versioned, forward-only migrations.
 *
 * - Each migration has a version (1, 2, ...) and runs once, in its own transaction, together with
 *   the row that records it in `schema_version`. A migration is never edited once released: a
 *   change is a new migration with the next number.
 * - `migrate` holds a session-level advisory lock (per schema) for the whole run, so any number of
 *   nodes may start at once: one applies what is missing, the others wait, then find nothing to do.
 *   The lock also covers `CREATE SCHEMA`, which races on its own (duplicate key in pg_namespace).
 * - A database whose recorded version is newer than the newest migration this code knows is
 *   refused: an older node must not write to tables whose meaning it does not know (roll forward,
 *   never back).
 * - Databases created before versioning (the schema of the first release, without
 *   `schema_version`) are adopted: migration 1 is that schema written with IF NOT EXISTS, so it
 *   completes such a database and records version 1.
 */
import type pg from 'pg';

export interface Migration {
  version: number;
  /** One line for the operator's log and the `schema_version` table. */
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'accounts, devices, one-time keys, invites, messages',
    sql: `
CREATE TABLE IF NOT EXISTS accounts (
  id BIGSERIAL PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  identity_key BYTEA NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
  id BIGSERIAL PRIMARY KEY,
  account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  device_id INTEGER NOT NULL,
  addr TEXT NOT NULL UNIQUE,
  registration_id INTEGER NOT NULL,
  secret_salt BYTEA NOT NULL,
  secret_hash BYTEA NOT NULL,
  spk_id BIGINT NOT NULL, spk BYTEA NOT NULL, spk_sig BYTEA NOT NULL,
  kyber_lr_id BIGINT NOT NULL, kyber_lr BYTEA NOT NULL, kyber_lr_sig BYTEA NOT NULL,
  UNIQUE (account_id, device_id)
);
CREATE TABLE IF NOT EXISTS pre_keys (
  device BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  key_id BIGINT NOT NULL,
  public_key BYTEA NOT NULL,
  PRIMARY KEY (device, key_id)
);
CREATE TABLE IF NOT EXISTS kyber_pre_keys (
  device BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  key_id BIGINT NOT NULL,
  public_key BYTEA NOT NULL,
  signature BYTEA NOT NULL,
  PRIMARY KEY (device, key_id)
);
CREATE TABLE IF NOT EXISTS invites (
  code_hash BYTEA PRIMARY KEY,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  id BIGSERIAL PRIMARY KEY,
  recipient TEXT NOT NULL,
  sender TEXT NOT NULL,
  sender_device INTEGER NOT NULL,
  kind SMALLINT NOT NULL,
  body BYTEA NOT NULL,
  ts BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_recipient ON messages (recipient, id);
`,
  },
  {
    version: 2,
    // Message ids must come from the shared sequence in call order (see postgres.ts, "Order"):
    // a per-session cache would hand a later transaction a smaller id. CACHE 1 is PostgreSQL's
    // default; this pins it against a hand-tuned database.
    description: 'message ids are allocated without a per-session cache',
    sql: `ALTER SEQUENCE messages_id_seq CACHE 1;`,
  },
  {
    version: 3,
    // The batch write of postgres.ts ("Order") in one round trip: the row locks are held for the
    // time of one call instead of six network round trips, and its statements' plans are cached.
    description: 'write_batch(): acks and sends of one batch in one call',
    sql: `
CREATE FUNCTION write_batch(
  ack_ids BIGINT[], ack_to TEXT[],
  m_to TEXT[], m_expected INTEGER[], m_sender TEXT[], m_sender_device INTEGER[], m_kind SMALLINT[], m_body BYTEA[], m_ts BIGINT[], m_expires BIGINT[],
  max_queue INTEGER
) RETURNS TABLE (status SMALLINT, id BIGINT, after BIGINT)
LANGUAGE plpgsql AS $fn$
DECLARE
  st SMALLINT[];
  lasts BIGINT[];
  ids BIGINT[];
  accepted INTEGER;
BEGIN
  -- Per-recipient order: lock each recipient's device row, in address order, before taking ids.
  PERFORM 1 FROM devices d WHERE d.addr = ANY(m_to) ORDER BY d.addr FOR NO KEY UPDATE;
  IF cardinality(ack_ids) > 0 THEN
    DELETE FROM messages m USING unnest(ack_ids, ack_to) AS a(aid, ato) WHERE m.id = a.aid AND m.recipient = a.ato;
  END IF;
  IF coalesce(cardinality(m_to), 0) = 0 THEN
    RETURN;
  END IF;
  -- Under the locks (a new snapshot): the device, its queue's length and newest id, per message.
  -- status: 0 stored, 1 NOT_FOUND, 2 STALE_DEVICE, 3 MAILBOX_FULL.
  SELECT array_agg(c.status ORDER BY c.i), array_agg(c.last ORDER BY c.i) INTO st, lasts FROM (
    SELECT x.i, x.last,
      CASE WHEN x.pre <> 0 THEN x.pre
           WHEN x.queued + row_number() OVER (PARTITION BY x.recipient, x.pre ORDER BY x.i) <= max_queue THEN 0
           ELSE 3 END::SMALLINT AS status
    FROM (
      SELECT m.i, m.recipient, coalesce(q.n, 0) AS queued, coalesce(q.last, 0) AS last,
        CASE WHEN d.addr IS NULL THEN 1 WHEN m.expected IS NOT NULL AND m.expected <> d.registration_id THEN 2 ELSE 0 END AS pre
      FROM unnest(m_to, m_expected) WITH ORDINALITY AS m(recipient, expected, i)
      LEFT JOIN devices d ON d.addr = m.recipient
      LEFT JOIN (SELECT mm.recipient, count(*) AS n, max(mm.id) AS last FROM messages mm WHERE mm.recipient = ANY(m_to) GROUP BY mm.recipient) q
        ON q.recipient = m.recipient
    ) x
  ) c;
  SELECT count(*) INTO accepted FROM unnest(st) s WHERE s = 0;
  -- Ids from the shared sequence, ascending, so each stored message gets the next in input order.
  SELECT coalesce(array_agg(v ORDER BY v), '{}') INTO ids FROM (SELECT nextval('messages_id_seq') AS v FROM generate_series(1, accepted)) s;
  RETURN QUERY
  WITH a0 AS (
    SELECT m.*, ids[row_number() OVER (ORDER BY m.i)] AS mid
    FROM unnest(m_to, m_sender, m_sender_device, m_kind, m_body, m_ts, m_expires, st, lasts) WITH ORDINALITY
      AS m(recipient, sender, sender_device, kind, body, ts, expires_at, status, last, i)
    WHERE m.status = 0
  ), a AS (
    SELECT a0.*, coalesce(lag(a0.mid) OVER (PARTITION BY a0.recipient ORDER BY a0.i), a0.last) AS prev FROM a0
  ), ins AS (
    INSERT INTO messages (id, recipient, sender, sender_device, kind, body, ts, expires_at)
    SELECT a.mid, a.recipient, a.sender, a.sender_device, a.kind, a.body, a.ts, a.expires_at FROM a
  )
  SELECT s.status, a.mid, a.prev FROM unnest(st) WITH ORDINALITY AS s(status, i) LEFT JOIN a ON a.i = s.i ORDER BY s.i;
END
$fn$;
`,
  },
  {
    version: 4,
    // Admins: the first account on a server, and those the operator names (main.ts `admin`).
    // Accounts that exist before this migration are not admins.
    description: 'accounts.admin',
    sql: `ALTER TABLE accounts ADD COLUMN admin BOOLEAN NOT NULL DEFAULT false;`,
  },
  {
    version: 5,
    // Attachment blobs (attachments/postgres-blob-store.ts): one row per blob, its bytes as
    // chunk rows stored uncompressed (ciphertext does not compress).
    description: 'attachments and attachment_chunks',
    sql: `
CREATE TABLE attachments (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  length BIGINT NOT NULL,
  received BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX attachments_by_owner ON attachments (owner, expires_at);
CREATE INDEX attachments_by_expiry ON attachments (expires_at);
CREATE TABLE attachment_chunks (
  id TEXT NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
  off BIGINT NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY (id, off)
);
ALTER TABLE attachment_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
`,
  },
  {
    version: 6,
    // Resends (resend.ts): per sending device a ring of slots remembering the digest of each stored
    // send, written in the same transaction as the message; write_batch_once answers a send whose
    // digest is remembered with the stored copy (status 4) and passes the others to write_batch.
    description: 'sent_memory and write_batch_once(): a resent message is stored once',
    sql: `
CREATE TABLE sent_memory (
  sender TEXT NOT NULL,
  slot INTEGER NOT NULL,
  digest BYTEA NOT NULL,
  message_id BIGINT NOT NULL,
  ts BIGINT NOT NULL,
  PRIMARY KEY (sender, slot)
);
CREATE INDEX sent_memory_by_digest ON sent_memory (sender, digest);
CREATE INDEX sent_memory_by_time ON sent_memory (ts);
CREATE TABLE sent_memory_heads (sender TEXT PRIMARY KEY, next BIGINT NOT NULL);

CREATE FUNCTION write_batch_once(
  ack_ids BIGINT[], ack_to TEXT[],
  m_to TEXT[], m_expected INTEGER[], m_sender TEXT[], m_sender_device INTEGER[], m_kind SMALLINT[], m_body BYTEA[], m_ts BIGINT[], m_expires BIGINT[],
  m_digest BYTEA[], max_queue INTEGER, resend_window BIGINT, ring INTEGER
) RETURNS TABLE (status SMALLINT, id BIGINT, after BIGINT, ts BIGINT)
LANGUAGE plpgsql AS $fn$
DECLARE
  n INTEGER := coalesce(cardinality(m_to), 0);
  addr TEXT[];
  seen_id BIGINT[];
  seen_ts BIGINT[];
  keep INTEGER[] := '{}';
  r_status SMALLINT[];
  r_id BIGINT[];
  r_after BIGINT[];
  o_status SMALLINT[];
  o_id BIGINT[];
  o_after BIGINT[];
  slot_no BIGINT;
  one_id BIGINT;
  one_ts BIGINT;
  i INTEGER;
  k INTEGER;
BEGIN
  IF n = 0 THEN
    RETURN QUERY SELECT w.status, w.id, w.after, NULL::BIGINT FROM write_batch(ack_ids, ack_to, m_to, m_expected, m_sender, m_sender_device, m_kind, m_body, m_ts, m_expires, max_queue) w;
    RETURN;
  END IF;
  SELECT array_agg(x.s || '.' || x.d ORDER BY x.o) INTO addr FROM unnest(m_sender, m_sender_device) WITH ORDINALITY AS x(s, d, o);
  -- The senders' ring heads, locked in address order (before write_batch locks recipients): two
  -- nodes writing the same device's sends (a client that reconnected elsewhere) take turns, so a
  -- resend sees the copy the other stored.
  INSERT INTO sent_memory_heads (sender, next) SELECT DISTINCT a, 0 FROM unnest(addr) a ORDER BY 1 ON CONFLICT (sender) DO NOTHING;
  PERFORM 1 FROM sent_memory_heads h WHERE h.sender = ANY(addr) ORDER BY h.sender FOR UPDATE;
  seen_id := array_fill(NULL::BIGINT, ARRAY[n]);
  seen_ts := array_fill(NULL::BIGINT, ARRAY[n]);
  FOR i IN 1..n LOOP
    IF m_digest[i] IS NOT NULL THEN
      SELECT s.message_id, s.ts INTO one_id, one_ts FROM sent_memory s
        WHERE s.sender = addr[i] AND s.digest = m_digest[i] AND s.ts > m_ts[i] - resend_window LIMIT 1;
      IF FOUND THEN
        seen_id[i] := one_id;
        seen_ts[i] := one_ts;
      END IF;
    END IF;
    IF seen_id[i] IS NULL THEN
      keep := keep || i;
    END IF;
  END LOOP;
  -- The rest as before, in one call; its rows answer keep[1], keep[2], ... in order.
  SELECT array_agg(wb.status ORDER BY wb.o), array_agg(wb.id ORDER BY wb.o), array_agg(wb.after ORDER BY wb.o)
    INTO r_status, r_id, r_after
    FROM write_batch(
      ack_ids, ack_to,
      array(SELECT m_to[j] FROM unnest(keep) WITH ORDINALITY AS u(j, q) ORDER BY q), array(SELECT m_expected[j] FROM unnest(keep) WITH ORDINALITY AS u(j, q) ORDER BY q),
      array(SELECT m_sender[j] FROM unnest(keep) WITH ORDINALITY AS u(j, q) ORDER BY q), array(SELECT m_sender_device[j] FROM unnest(keep) WITH ORDINALITY AS u(j, q) ORDER BY q),
      array(SELECT m_kind[j] FROM unnest(keep) WITH ORDINALITY AS u(j, q) ORDER BY q), array(SELECT m_body[j] FROM unnest(keep) WITH ORDINALITY AS u(j, q) ORDER BY q),
      array(SELECT m_ts[j] FROM unnest(keep) WITH ORDINALITY AS u(j, q) ORDER BY q), array(SELECT m_expires[j] FROM unnest(keep) WITH ORDINALITY AS u(j, q) ORDER BY q),
      max_queue) WITH ORDINALITY AS wb(status, id, after, o);
  o_status := array_fill(4::SMALLINT, ARRAY[n]);
  o_id := seen_id;
  o_after := array_fill(NULL::BIGINT, ARRAY[n]);
  FOR k IN 1..coalesce(cardinality(keep), 0) LOOP
    i := keep[k];
    o_status[i] := r_status[k];
    o_id[i] := r_id[k];
    o_after[i] := r_after[k];
    IF r_status[k] = 0 AND m_digest[i] IS NOT NULL THEN
      UPDATE sent_memory_heads h SET next = h.next + 1 WHERE h.sender = addr[i] RETURNING h.next INTO slot_no;
      INSERT INTO sent_memory (sender, slot, digest, message_id, ts) VALUES (addr[i], (slot_no % ring)::INTEGER, m_digest[i], r_id[k], m_ts[i])
        ON CONFLICT (sender, slot) DO UPDATE SET digest = EXCLUDED.digest, message_id = EXCLUDED.message_id, ts = EXCLUDED.ts;
    END IF;
  END LOOP;
  RETURN QUERY SELECT u.st, u.mid, u.aft, u.t FROM unnest(o_status, o_id, o_after, seen_ts) WITH ORDINALITY AS u(st, mid, aft, t, q) ORDER BY u.q;
END
$fn$;
`,
  },
  {
    version: 7,
    // Linked devices: names and dates for the owner's device list. Devices from before it have no
    // row (listed with an empty name, the account's creation time, never seen).
    description: 'device_info: device names, creation and last-seen times',
    sql: `
CREATE TABLE device_info (
  device BIGINT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_seen BIGINT NOT NULL
);
`,
  },
];

/** The newest schema version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** First key of the advisory lock that serializes migrations (the second is the schema's hash). */
const MIGRATION_LOCK = 0x74616d67; // "tamg"

/** A database this code must not run against; the message is for the operator, on one line. */
export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaError';
  }
}

export interface MigrationReport {
  from: number;
  to: number;
  applied: number[];
}

/**
 * Brings `schema` up to the newest version, creating it if needed. Safe to call from any number of
 * processes at once. Throws SchemaError when the database is newer than this code.
 */
export async function migrate(client: pg.ClientBase, schema: string, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationReport> {
  const newest = migrations[migrations.length - 1]?.version ?? 0;
  await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK, schema]);
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`SET search_path TO ${schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_version (
      version INTEGER PRIMARY KEY,
      description TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
    const from = Number(((await client.query('SELECT coalesce(max(version), 0) AS v FROM schema_version')).rows[0] as { v: unknown }).v);
    if (from > newest) {
      throw new SchemaError(
        `database schema "${schema}" is at version ${from}, newer than this server knows (${newest}); ` +
          'run the newer tacit server (schema changes are forward-only)',
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= from) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_version (version, description) VALUES ($1, $2)', [m.version, m.description]);
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
      applied.push(m.version);
    }
    return { from, to: Math.max(from, newest), applied };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK, schema]).catch(() => undefined);
  }
}
