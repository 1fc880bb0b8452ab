/**
 * Upgrade in place from the release before record storage: its one JSON state document (and, in
 * a browser, the web client's journal of sent messages) becomes records, in one commit. The
 * caller removes the old data only after that commit, so a crash during the upgrade leaves the
 * old data to upgrade again.
 *
 * What maps to what:
 * - account, pre-keys, sessions, identities (trusted and pending), contacts, a planned upload:
 *   the same values, protocol records as their bytes (no more base64 inside JSON).
 * - received messages: the conversations' history, in order; the read cursor of a conversation
 *   stops before its first unread message (a message read after an unread one shows again,
 *   never the reverse).
 * - the web journal's sent messages join their conversations in time order, `sent` as sent,
 *   everything else as failed with a note (the old release could not tell whether a message
 *   left while the page was closing); its started conversations are kept.
 * - the outbox (ciphertexts not confirmed by the server) is resent unchanged.
 * - duplicate-suppression memory and held (quarantined) messages are kept.
 * Entries that do not parse are skipped; a damaged account is STATE_CORRUPT.
 */
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from '@tacit/api';
import type { CryptoBackend } from '@tacit/protocol';
import { accountCodec, type Account } from './account.js';
import { toHex, unb64, utf8Decode, utf8Encode } from './bytes.js';
import { Core, countersCodec, emptyCounters } from './core.js';
import { contactCodec } from './directory.js';
import { ClientError } from './errors.js';
import {
  conversationCodec,
  directConversation,
  MAX_HISTORY_BYTES,
  MAX_STORED_MESSAGES,
  messageCodec,
  messageError,
  messageWeight,
  type ConversationRecord,
  type MessageMeta,
} from './history.js';
import { MAX_SEEN_MESSAGE_IDS, MAX_SEEN_SERVER_IDS } from './inbox.js';
import { PREFIX, seqKey } from './keys.js';
import { decodeState, type StateData } from './legacy-state.js';
import { ciphertextCodec, MESSAGE_ID_BYTES } from './outbox.js';
import { KEY_STATE_KEY, kyberPreKeyCodec, kyberPreKeyKey, preKeyCodec, preKeyKey, signedPreKeyCodec, signedPreKeyKey, UPLOAD_KEY, keyStateCodec, uploadCodec } from './prekeys.js';
import { sessionCodec } from './protocol-stores.js';
import { bytesCodec, isInt, isObj, isStr } from './record-codec.js';
import type { RecordStore } from './record-store.js';
import { heldCodec, identityCodec, MAX_QUARANTINED, type IdentityRecord } from './trust.js';
import { Txn } from './txn.js';

export interface LegacyData {
  /** The state document (`state.sealed`'s plaintext, or the `client-state` record). */
  state: Uint8Array;
  /** The web client's journal record, if any. */
  journal?: Uint8Array;
}

/** What the old release's web client said about a message sent while the page was closing. */
export const UNCONFIRMED_NOTE = 'Not confirmed: the page closed while this was sending. It may still have arrived; send it again only if it did not.';

const seenCodec = bytesCodec('duplicate-suppression');

function isName(s: unknown): s is string {
  return typeof s === 'string' && s.length <= USERNAME_MAX_LENGTH && USERNAME_PATTERN.test(s);
}

function maybeBytes(s: unknown): Uint8Array | undefined {
  if (typeof s !== 'string') return undefined;
  try {
    return unb64(s);
  } catch {
    return undefined;
  }
}

/** One message on its way into a conversation, before it gets its sequence number. */
interface Pending {
  at: number;
  meta: MessageMeta;
  text: string;
  read: boolean;
}

interface JournalSent {
  text: string;
  at: number;
  state: string;
  error?: string;
}

/** The web journal (format 1), decoded totally: what does not parse is left out. */
function decodeJournal(bytes: Uint8Array | undefined): { conversations: Map<string, number>; outgoing: Map<string, JournalSent[]> } {
  const out = { conversations: new Map<string, number>(), outgoing: new Map<string, JournalSent[]>() };
  if (bytes === undefined) return out;
  let v: unknown;
  try {
    v = JSON.parse(utf8Decode(bytes));
  } catch {
    return out;
  }
  if (!isObj(v) || v['v'] !== 1) return out;
  const conv = v['conversations'];
  if (isObj(conv)) for (const [name, c] of Object.entries(conv)) if (isName(name) && isObj(c) && isInt(c['startedAt'])) out.conversations.set(name, c['startedAt']);
  const sent = v['outgoing'];
  if (isObj(sent)) {
    for (const [name, list] of Object.entries(sent)) {
      if (!isName(name) || !Array.isArray(list)) continue;
      const msgs: JournalSent[] = [];
      for (const m of list as unknown[]) {
        if (!isObj(m) || typeof m['text'] !== 'string' || !isInt(m['at']) || typeof m['state'] !== 'string') continue;
        msgs.push({ text: m['text'], at: m['at'], state: m['state'], ...(typeof m['error'] === 'string' ? { error: m['error'] } : {}) });
      }
      out.outgoing.set(name, msgs);
    }
  }
  return out;
}

function checkAccount(s: StateData): Account {
  const a = s.account as unknown;
  const account = isObj(a) ? accountCodec.decode(utf8Encode(JSON.stringify(a))) : undefined;
  if (account === undefined) throw new ClientError('STATE_CORRUPT', 'the local state of the previous release has a damaged account');
  return account;
}

/**
 * Writes the converted state into `store` (which must be empty) in one commit. Returns the
 * number of messages converted.
 */
export async function upgradeLegacyState(store: RecordStore, backend: CryptoBackend, legacy: LegacyData, now: number): Promise<{ messages: number }> {
  const s = decodeState(legacy.state);
  const account = checkAccount(s);
  if ((await store.list('', { limit: 1 })).length > 0) throw new ClientError('STATE_CORRUPT', 'cannot upgrade into a store that already holds records');
  const t = new Txn(store);
  const keys = Core.initialRecords(t, backend);
  const counters = emptyCounters();
  t.write(accountCodec, PREFIX.account, account);

  // ---- pre-keys ----
  const keyMeta = (k: unknown): { createdAt: number; retiredAt?: number; record: Uint8Array } | undefined => {
    if (!isObj(k) || !isInt(k['createdAt'])) return undefined;
    const record = maybeBytes(k['record']);
    if (record === undefined) return undefined;
    return { createdAt: k['createdAt'], record, ...(isInt(k['retiredAt']) ? { retiredAt: k['retiredAt'] } : {}) };
  };
  for (const [id, k] of Object.entries(s.preKeys)) {
    const m = keyMeta(k);
    if (m && isInt(Number(id), 1)) t.write(preKeyCodec, preKeyKey(Number(id)), { meta: { createdAt: m.createdAt, ...(m.retiredAt !== undefined ? { retiredAt: m.retiredAt } : {}) }, blob: m.record });
  }
  for (const [id, k] of Object.entries(s.signedPreKeys)) {
    const m = keyMeta(k);
    if (m && isInt(Number(id), 1)) t.write(signedPreKeyCodec, signedPreKeyKey(Number(id)), { meta: { createdAt: m.createdAt, ...(m.retiredAt !== undefined ? { retiredAt: m.retiredAt } : {}) }, blob: m.record });
  }
  for (const [id, k] of Object.entries(s.kyberPreKeys)) {
    const m = keyMeta(k);
    const lastResort = isObj(k) && k['lastResort'] === true;
    if (m && isInt(Number(id), 1)) t.write(kyberPreKeyCodec, kyberPreKeyKey(Number(id)), { meta: { createdAt: m.createdAt, lastResort, ...(m.retiredAt !== undefined ? { retiredAt: m.retiredAt } : {}) }, blob: m.record });
  }
  const ids = [s.nextPreKeyId, s.currentSignedPreKeyId, s.nextSignedPreKeyId, s.currentLastResortKyberId, s.nextKyberPreKeyId];
  if (!ids.every((n) => isInt(n))) throw new ClientError('STATE_CORRUPT', 'the local state of the previous release has damaged pre-key bookkeeping');
  t.write(keyStateCodec, KEY_STATE_KEY, {
    nextPreKeyId: s.nextPreKeyId,
    currentSignedPreKeyId: s.currentSignedPreKeyId,
    nextSignedPreKeyId: s.nextSignedPreKeyId,
    currentLastResortKyberId: s.currentLastResortKyberId,
    nextKyberPreKeyId: s.nextKyberPreKeyId,
  });
  if (isObj(s.pendingUpload)) t.write(uploadCodec, UPLOAD_KEY, s.pendingUpload);

  // ---- sessions, identities, contacts ----
  for (const [key, raw] of Object.entries(s.sessions)) {
    const i = key.lastIndexOf('.');
    const name = key.slice(0, i);
    const device = Number(key.slice(i + 1));
    const bytes = maybeBytes(raw);
    if (isName(name) && isInt(device, 1) && bytes !== undefined) t.write(sessionCodec, keys.session(name, device), bytes);
  }
  const identities = new Map<string, IdentityRecord>();
  for (const [name, key] of Object.entries(s.identities)) if (isName(name) && isStr(key, 128)) identities.set(name, { username: name, trusted: key });
  for (const [name, p] of Object.entries(s.pendingIdentities)) {
    if (!isName(name) || !isObj(p) || !isStr(p['key'], 128) || !isInt(p['seenAt'])) continue;
    identities.set(name, { ...(identities.get(name) ?? { username: name }), pending: { key: p['key'], seenAt: p['seenAt'] } });
  }
  for (const [name, rec] of identities) t.write(identityCodec, keys.identity(name), rec);
  for (const [name, c] of Object.entries(s.contacts)) {
    if (!isName(name) || !isObj(c) || !Array.isArray(c['devices'])) continue;
    const devices = (c['devices'] as unknown[]).filter((d): d is { deviceId: number; registrationId: number } => isObj(d) && isInt(d['deviceId'], 1) && isInt(d['registrationId']));
    t.write(contactCodec, keys.contact(name), { username: name, devices: devices.map((d) => ({ deviceId: d.deviceId, registrationId: d.registrationId })), addedAt: isInt(c['addedAt']) ? c['addedAt'] : now });
  }

  // ---- history ----
  const byConversation = new Map<string, Pending[]>();
  const add = (contact: string, p: Pending): void => {
    const list = byConversation.get(contact) ?? [];
    list.push(p);
    byConversation.set(contact, list);
  };
  for (const m of s.messages as unknown[]) {
    if (!isObj(m) || !isName(m['from']) || typeof m['text'] !== 'string' || !isStr(m['id'], 64) || !isStr(m['serverId'], 64)) continue;
    const { from, text, id, serverId } = m as { from: string; text: string; id: string; serverId: string };
    const num = (k: string): number => (isInt(m[k]) ? (m[k] as number) : 0);
    add(from, {
      at: num('receivedAt'),
      meta: { d: 'in', id, from, dev: Math.max(1, num('fromDevice')), sentAt: num('sentAt'), srv: serverId, ts: num('serverTimestamp'), rcv: num('receivedAt') },
      text,
      read: m['read'] === true,
    });
  }
  const journal = decodeJournal(legacy.journal);
  for (const [contact, list] of journal.outgoing) {
    for (const o of list) {
      const meta: MessageMeta = { d: 'out', id: toHex(backend.randomBytes(MESSAGE_ID_BYTES)), from: account.username, dev: account.deviceId, sentAt: o.at, st: 'sent', to: {}, pend: 0, att: 0 };
      if (o.state !== 'sent') {
        meta.st = 'failed';
        meta.err = o.state === 'failed' ? messageError('SERVER', o.error ?? 'not sent') : messageError('NETWORK', UNCONFIRMED_NOTE);
      }
      add(contact, { at: o.at, meta, text: o.text, read: true });
    }
  }
  // Within the bounds: oldest read messages go first, as they would have on receipt.
  const everything = [...byConversation.values()].flat();
  const weighed = (p: Pending): number => messageWeight(`${PREFIX.message}${'x'.repeat(24)}/${seqKey(0)}`, messageCodec.encode({ meta: p.meta, blob: utf8Encode(p.text) }));
  let total = everything.reduce((n, p) => n + weighed(p), 0);
  let count = everything.length;
  const dropped = new Set<Pending>();
  for (const readOnly of [true, false]) {
    for (const p of [...everything].sort((a, b) => a.at - b.at)) {
      if (count <= MAX_STORED_MESSAGES && total <= MAX_HISTORY_BYTES) break;
      if (readOnly && !p.read) continue;
      if (dropped.has(p)) continue;
      dropped.add(p);
      count--;
      total -= weighed(p);
    }
  }
  const contacts = new Set([...byConversation.keys(), ...journal.conversations.keys()]);
  const ordered: { contact: string; p: Pending }[] = [];
  for (const contact of contacts) for (const p of byConversation.get(contact) ?? []) ordered.push({ contact, p });
  // One sequence for the whole store, in time order (stable: equal times keep their order).
  ordered.sort((a, b) => a.p.at - b.p.at);
  const convRecords = new Map<string, ConversationRecord>();
  for (const contact of contacts) {
    const id = directConversation(contact);
    const createdAt = journal.conversations.get(contact) ?? Math.min(now, ...(byConversation.get(contact) ?? []).map((p) => p.at));
    convRecords.set(contact, { id, createdAt, read: 0, unread: 0, last: 0, lastAt: createdAt, count: 0, bytes: 0, dropped: 0, droppedUnread: 0 });
  }
  const firstUnread = new Map<string, boolean>();
  for (const { contact, p } of ordered) {
    const conv = convRecords.get(contact)!;
    if (dropped.has(p)) {
      conv.dropped++;
      if (!p.read) conv.droppedUnread++;
      continue;
    }
    const seq = ++counters.seq;
    const key = keys.message(conv.id, seq);
    const value = messageCodec.encode({ meta: p.meta, blob: utf8Encode(p.text) });
    t.putBytes(key, value);
    const w = messageWeight(key, value);
    conv.count++;
    conv.bytes += w;
    conv.last = seq;
    conv.lastAt = Math.max(conv.lastAt, p.at);
    counters.messages++;
    counters.historyBytes += w;
    if (p.meta.d === 'in') {
      if (!p.read) firstUnread.set(contact, true);
      if (firstUnread.get(contact)) conv.unread++;
      else conv.read = seq;
    } else if (!firstUnread.get(contact)) conv.read = seq;
  }
  for (const conv of convRecords.values()) {
    t.write(conversationCodec, keys.conversation(conv.id), conv);
    counters.conversations++;
  }

  // ---- outbox: ciphertexts resent unchanged (their message was never in history) ----
  for (const e of s.outbox as unknown[]) {
    if (!isObj(e) || !isStr(e['clientId'], 64) || !isStr(e['messageId'], 64) || !isName(e['to']) || !isInt(e['deviceId'], 1)) continue;
    const type = e['type'];
    const body = maybeBytes(e['body']);
    if ((type !== 'prekey' && type !== 'whisper') || body === undefined) continue;
    t.write(ciphertextCodec, PREFIX.outboxCiphertext + seqKey(++counters.seq), {
      meta: {
        clientId: e['clientId'],
        conversation: directConversation(e['to']),
        msg: 0,
        messageId: e['messageId'],
        to: e['to'],
        deviceId: e['deviceId'],
        ...(isInt(e['registrationId'], 1) ? { registrationId: e['registrationId'] } : {}),
        type,
        createdAt: isInt(e['createdAt']) ? e['createdAt'] : now,
      },
      blob: body,
    });
    counters.ciphertexts++;
  }

  // ---- duplicate-suppression memory, oldest first ----
  for (const id of (s.seenServerIds as unknown[]).slice(-MAX_SEEN_SERVER_IDS)) {
    if (!isStr(id, 64) || !/^[0-9A-Za-z_-]+$/.test(id)) continue;
    const key = PREFIX.seenServerId + id;
    t.write(seenCodec, key, new Uint8Array(0));
    t.write(seenCodec, PREFIX.seenServerOrder + seqKey(++counters.seq), utf8Encode(key));
    counters.seenServerIds++;
  }
  for (const pair of (s.seenMessageIds as unknown[]).slice(-MAX_SEEN_MESSAGE_IDS)) {
    if (typeof pair !== 'string') continue;
    const i = pair.indexOf(':');
    const from = pair.slice(0, i);
    if (i < 0 || !isName(from)) continue;
    const key = keys.seenMessage(from, pair.slice(i + 1));
    t.write(seenCodec, key, new Uint8Array(0));
    t.write(seenCodec, PREFIX.seenMessageOrder + seqKey(++counters.seq), utf8Encode(key));
    counters.seenMessageIds++;
  }

  // ---- held messages ----
  for (const q of (s.quarantine as unknown[]).slice(-MAX_QUARANTINED)) {
    if (!isObj(q) || !isStr(q['serverId'], 64) || !isName(q['from']) || !isInt(q['fromDevice'], 1)) continue;
    const type = q['type'];
    const body = maybeBytes(q['body']);
    if ((type !== 'prekey' && type !== 'whisper') || body === undefined) continue;
    t.write(heldCodec, PREFIX.quarantine + seqKey(++counters.seq), {
      meta: { serverId: q['serverId'], from: q['from'], fromDevice: q['fromDevice'], type, serverTimestamp: isInt(q['serverTimestamp']) ? q['serverTimestamp'] : 0, receivedAt: isInt(q['receivedAt']) ? q['receivedAt'] : now },
      blob: body,
    });
    counters.quarantined++;
  }

  t.write(countersCodec, PREFIX.counters, counters);
  await t.commit();
  return { messages: counters.messages };
}
