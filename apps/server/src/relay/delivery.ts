/**
 * Delivery: answers each stored send (`sent`, or the store's refusal), hands messages to their
 * recipients' connections, and pages queues from the store.
 *
 * Order: a connection is given messages in id order, either straight after the commit (when it
 * has nothing older waiting) or by paging its queue from the store. `cursor` is the highest id
 * handed to the connection; `backlog` says the store may hold more than that. With several nodes
 * a message may be committed by another node, so "nothing older waiting" is checked against the
 * store's answer: the id before the message in its queue (`after`) must be at most `cursor`.
 */
import { MAX_SENT_BATCH } from '@tacit/api';
import type { RemoteMessage } from '../cluster.js';
import type { Context } from '../context.js';
import { addressKey, CIPHERTEXT_TYPE_OF_KIND, type EnqueueResult, type NewMessage, type StoredMessage } from '../store.js';
import type { FanoutResult } from '../fanout.js';
import type { Connection } from './connection.js';
import { fanoutAnswer, type PendingFanout } from './fanout.js';
import type { Hub } from './hub.js';
import type { PendingSend } from './writer.js';

/**
 * Messages one connection may hold back while an older one is on its way from another node
 * (limits.outOfOrderWaitMs); beyond, the queue is read from the store. Bounds memory per connection.
 */
const MAX_WAITING_PER_CONNECTION = 64;


/** The message of a SEND_QUOTA_EXCEEDED reply (quotas.ts). */
const QUOTA_MESSAGE = 'daily sending quota exceeded (to this device, or in all); not stored';
export class Delivery {
  readonly #ctx: Context;
  readonly #hub: Hub;
  readonly #internal: (conn: Connection, e: unknown) => void;
  /** Messages from other nodes' events, handed over at the end of this turn. */
  #remote: RemoteMessage[] = [];
  #remoteScheduled = false;

  /** `internal` closes a connection after a store failure. */
  constructor(ctx: Context, hub: Hub, internal: (conn: Connection, e: unknown) => void) {
    this.#ctx = ctx;
    this.#hub = hub;
    this.#internal = internal;
  }

  /**
   * A batch has ids and its commit is in flight: hand each message straight to its recipient when
   * that connection is connected here and can take it now (nothing older waiting, room for more).
   * The rest waits for `stored`. Senders hear nothing until `stored`: a message may reach its
   * recipient before it is durable, but is acknowledged to its sender only after. Should the
   * commit fail, the sender is told to retry and the recipient's session drops the second copy
   * as a duplicate; the store never reuses an id announced here.
   */
  assigned(sends: PendingSend[], results: EnqueueResult[]): void {
    const max = this.#ctx.limits.maxUnackedPerConnection;
    const corked = new Set<Connection>();
    for (let i = 0; i < sends.length; i++) {
      const s = sends[i]!;
      const r = results[i];
      if (r === undefined || !r.ok || r.resent !== undefined) continue;
      const to = this.#hub.get(addressKey(s.message.to));
      if (to === undefined || to.backlog || to.fetching || to.inflight.size >= max) continue;
      if (!corked.has(to) && to.cork()) corked.add(to);
      this.#push(to, { id: r.id, kind: s.message.kind, from: s.message.from, timestamp: s.message.timestamp }, s.bodyB64);
      s.earlyId = r.id;
    }
    for (const c of corked) c.uncork();
  }

  /** A batch is committed: answer each sender and deliver to recipients connected here. */
  stored(sends: PendingSend[], results: EnqueueResult[]): void {
    // Cork every socket this batch writes to, so its frames leave in one write per socket.
    const corked = new Set<Connection>();
    const cork = (c: Connection) => {
      if (!corked.has(c) && c.cork()) corked.add(c);
    };
    for (const s of sends) {
      cork(s.conn);
      const to = this.#hub.get(addressKey(s.message.to));
      if (to !== undefined) cork(to);
    }
    const elsewhere = new Set<string>();
    const remote: RemoteMessage[] = [];
    // Connections that said `batched`: their `sent` entries, written once per connection below.
    const batches = new Map<Connection, string[]>();
    for (let i = 0; i < sends.length; i++) {
      const s = sends[i]!;
      const r = results[i]!;
      s.conn.pendingSends--;
      if (!r.ok) {
        s.conn.reply({
          type: 'error',
          code: r.code,
          message: r.code === 'NOT_FOUND' ? 'no such device' : r.code === 'STALE_DEVICE' ? 'the device re-registered; refresh its keys' : 'recipient mailbox is full',
          id: s.clientId,
        });
        continue;
      }
      // A resend (resend.ts) is answered with the stored copy, which is delivered already or queued.
      const timestamp = r.resent ?? s.message.timestamp;
      if (r.resent === undefined) this.#ctx.metrics.sends++;
      if (s.conn.batched) {
        const entry = `{"id":${JSON.stringify(s.clientId)},"serverId":"${r.id}","timestamp":${timestamp}}`;
        const b = batches.get(s.conn);
        if (b === undefined) batches.set(s.conn, [entry]);
        else b.push(entry);
      } else s.conn.send(`{"type":"sent","id":${JSON.stringify(s.clientId)},"serverId":"${r.id}","timestamp":${timestamp}}`);
      if (r.resent !== undefined) continue;
      if (s.earlyId === r.id) continue;
      const toKey = addressKey(s.message.to);
      const to = this.#hub.get(toKey);
      const m = s.message;
      if (to !== undefined) this.#deliverLive(to, r.id, r.after, m, s.bodyB64);
      else if (r.after === undefined) elsewhere.add(toKey);
      else remote.push({ key: toKey, id: r.id, after: r.after, kind: m.kind, from: m.from, timestamp: m.timestamp, bodyB64: s.bodyB64 });
    }
    for (const [conn, entries] of batches) {
      for (let i = 0; i < entries.length; i += MAX_SENT_BATCH) conn.send(`{"type":"sent-batch","sent":[${entries.slice(i, i + MAX_SENT_BATCH).join(',')}]}`);
    }
    for (const c of corked) c.uncork();
    if (elsewhere.size > 0 || remote.length > 0) this.#ctx.cluster?.publishDeliver([...elsewhere], remote);
  }

  /**
   * Another node stored these messages: hand them to their devices' connections here, if any.
   * Events that arrive in one event-loop turn are handed over together at the end of it, so each
   * connection gets one write for all of them (a write is a system call; events come per batch of
   * each other node).
   */
  deliverRemote(messages: RemoteMessage[]): void {
    if (messages.length === 0) return;
    this.#remote.push(...messages);
    if (this.#remoteScheduled) return;
    this.#remoteScheduled = true;
    setImmediate(() => {
      this.#remoteScheduled = false;
      const batch = this.#remote;
      this.#remote = [];
      const corked = new Set<Connection>();
      for (const r of batch) {
        const conn = this.#hub.get(r.key);
        if (conn === undefined) continue;
        if (!corked.has(conn) && conn.cork()) corked.add(conn);
        this.#deliverLive(conn, r.id, r.after, r, r.bodyB64);
      }
      for (const c of corked) c.uncork();
    });
  }

  /** A batch failed: tell each sender to retry. */
  notStored(sends: PendingSend[]): void {
    for (const s of sends) {
      s.conn.pendingSends--;
      s.conn.reply({ type: 'error', code: 'INTERNAL', message: 'not stored; retry', id: s.clientId });
    }
  }

  /** Sends over their device's rate: refused, not stored. */
  rateLimited(sends: PendingSend[]): void {
    for (const s of sends) {
      s.conn.pendingSends--;
      s.conn.reply({ type: 'error', code: 'RATE_LIMITED', message: 'send rate exceeded', id: s.clientId });
    }
  }

  quotaExceeded(sends: PendingSend[]): void {
    for (const s of sends) {
      s.conn.pendingSends--;
      s.conn.reply({ type: 'error', code: 'SEND_QUOTA_EXCEEDED', message: QUOTA_MESSAGE, id: s.clientId });
    }
  }

  /** A fan-out is written: answer the sender and deliver every stored copy (ids ascend in commit order). */
  fanoutStored(p: PendingFanout, r: FanoutResult): void {
    p.conn.pendingSends--;
    const answer = fanoutAnswer(p, r);
    if (!r.ok) {
      this.#ctx.metrics.refused('ws', r.code);
      p.conn.send(answer);
      return;
    }
    const corked = new Set<Connection>();
    const cork = (c: Connection) => {
      if (!corked.has(c) && c.cork()) corked.add(c);
    };
    cork(p.conn);
    p.conn.send(answer);
    const elsewhere = new Set<string>();
    const remote: RemoteMessage[] = [];
    const f = p.fanout;
    r.stored.forEach((copies, i) => {
      const rcpt = f.recipients[i]!;
      copies.forEach((copy, j) => {
        if (copy === null) return;
        this.#ctx.metrics.sends++;
        const device = rcpt.devices[j]!;
        const key = addressKey({ username: rcpt.username, deviceId: device.deviceId });
        const m = { kind: device.kind, from: f.from, timestamp: f.timestamp };
        const bodyB64 = p.bodiesB64[i]![j]!;
        const to = this.#hub.get(key);
        if (to !== undefined) {
          cork(to);
          this.#deliverLive(to, copy.id, copy.after, m, bodyB64);
        } else if (copy.after === undefined) elsewhere.add(key);
        else remote.push({ key, id: copy.id, after: copy.after, ...m, bodyB64 });
      });
    });
    for (const c of corked) c.uncork();
    if (elsewhere.size > 0 || remote.length > 0) this.#ctx.cluster?.publishDeliver([...elsewhere], remote);
  }

  /** A fan-out was not stored: its write failed (retry), or it is over the sender's send rate. */
  fanoutNotStored(p: PendingFanout, code: 'INTERNAL' | 'RATE_LIMITED' | 'SEND_QUOTA_EXCEEDED'): void {
    p.conn.pendingSends--;
    const message = code === 'INTERNAL' ? 'not stored; retry' : code === 'RATE_LIMITED' ? 'send rate exceeded' : QUOTA_MESSAGE;
    p.conn.reply({ type: 'error', code, message, id: p.clientId });
  }

  /** The connection acknowledged `id`: it has room for one more. */
  acked(conn: Connection, id: number): void {
    conn.inflight.delete(id);
    if (conn.backlog) this.pump(conn);
  }

  /** The connection acknowledged these ids (pushed on it and written to the store): room for more. */
  ackedMany(conn: Connection, ids: readonly number[]): void {
    for (const id of ids) conn.inflight.delete(id);
    if (conn.backlog) this.pump(conn);
  }

  /** The store may hold new messages for these devices (stored by another node). */
  wake(keys: string[]): void {
    for (const k of keys) {
      const c = this.#hub.get(k);
      if (c === undefined) continue;
      c.backlog = true;
      this.pump(c);
    }
  }

  /**
   * Pushes a just-stored message, unless something older may be waiting (then pages the queue).
   * `after` is the id before it in its queue, when the store says (several nodes).
   */
  #deliverLive(conn: Connection, id: number, after: number | undefined, m: Pick<NewMessage, 'kind' | 'from' | 'timestamp'>, bodyB64: string): void {
    // A page from the store already handed it over (it raced this commit's answer).
    if (id <= conn.cursor) return;
    const free = !conn.backlog && !conn.fetching && conn.inflight.size < this.#ctx.limits.maxUnackedPerConnection;
    if (free && (after === undefined || after <= conn.cursor)) {
      this.#push(conn, { id, kind: m.kind, from: m.from, timestamp: m.timestamp }, bodyB64);
      this.#release(conn);
    } else if (free && conn.waiting.size < MAX_WAITING_PER_CONNECTION) {
      // An older message is on its way from another node: hold this one until it is pushed.
      conn.waiting.set(after!, { id, kind: m.kind, from: m.from, timestamp: m.timestamp, bodyB64 });
      if (conn.waitTimer === undefined) {
        conn.waitTimer = setTimeout(() => {
          conn.waitTimer = undefined;
          if (conn.waiting.size === 0) return;
          conn.backlog = true;
          this.pump(conn);
        }, this.#ctx.limits.outOfOrderWaitMs);
        conn.waitTimer.unref();
      }
    } else {
      conn.backlog = true;
      this.pump(conn);
    }
  }

  /** Pushes the held-back messages that now follow the cursor. */
  #release(conn: Connection): void {
    const max = this.#ctx.limits.maxUnackedPerConnection;
    for (let w = conn.waiting.get(conn.cursor); w !== undefined; w = conn.waiting.get(conn.cursor)) {
      if (conn.inflight.size >= max) {
        conn.backlog = true;
        return;
      }
      conn.waiting.delete(conn.cursor);
      this.#push(conn, w, w.bodyB64);
    }
    if (conn.waiting.size === 0) {
      clearTimeout(conn.waitTimer);
      conn.waitTimer = undefined;
    }
  }

  #push(conn: Connection, m: Pick<StoredMessage, 'id' | 'kind' | 'from' | 'timestamp'>, bodyB64: string): void {
    conn.inflight.add(m.id);
    conn.cursor = m.id;
    this.#ctx.metrics.deliveries++;
    conn.send(messageFrameText(m, bodyB64));
  }

  /** Pages the store into the connection while it has room and the store may hold more. */
  pump(conn: Connection): void {
    const max = this.#ctx.limits.maxUnackedPerConnection;
    if (conn.fetching || !conn.backlog || conn.state !== 'ready' || conn.inflight.size >= max) return;
    conn.fetching = true;
    conn.backlog = false;
    // The page brings what was held back too: it is all committed, after the cursor.
    conn.waiting.clear();
    clearTimeout(conn.waitTimer);
    conn.waitTimer = undefined;
    const limit = max - conn.inflight.size;
    this.#ctx.store.fetchQueue(conn.device!, conn.cursor, limit, this.#ctx.now()).then(
      (rows) => {
        conn.fetching = false;
        if (conn.state !== 'ready') return;
        for (const m of rows) this.#push(conn, m, Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength).toString('base64'));
        if (rows.length === limit) conn.backlog = true;
        else if (!conn.queueEmptySent && !conn.backlog) {
          conn.queueEmptySent = true;
          conn.reply({ type: 'queue-empty' });
        }
        if (conn.backlog) this.pump(conn);
      },
      (e: unknown) => {
        conn.fetching = false;
        this.#internal(conn, e);
      },
    );
  }
}

/**
 * The `message` frame, written directly: it is the hot path, and every part is already known to
 * be JSON-safe (a canonical base64 body, a validated username, integers) — only the client-chosen
 * strings elsewhere need JSON.stringify. Equal to JSON.stringify of a MessageFrame (tested).
 */
export function messageFrameText(m: Pick<StoredMessage, 'id' | 'kind' | 'from' | 'timestamp'>, bodyB64: string): string {
  return (
    `{"type":"message","envelope":{"id":"${m.id}","type":"${CIPHERTEXT_TYPE_OF_KIND[m.kind]}","body":"${bodyB64}",` +
    `"source":{"username":"${m.from.username}","deviceId":${m.from.deviceId}},"timestamp":${m.timestamp}}}`
  );
}
