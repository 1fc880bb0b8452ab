/**
 * Trust on first use, per contact (DESIGN §2.5): the first identity key seen for a contact is
 * trusted; a different one later is recorded as pending and refused loudly until the user
 * compares safety numbers and accepts it (`trust`). Messages from a contact whose key changed are
 * held undecrypted (the quarantine) and decrypted when the user accepts the new key.
 *
 * Records: `idk/<user>` (trusted key and pending key), `q/<seq>` (held envelopes, at most
 * MAX_QUARANTINED, oldest dropped first).
 */
import { PublicKey, safetyNumber } from '@tacit/protocol';
import { bytesEqual, utf8Encode, unb64 } from './bytes.js';
import type { Core, StateTxn } from './core.js';
import { ClientError } from './errors.js';
import { PREFIX, seqKey } from './keys.js';
import { blobCodec, isInt, isObj, isStr, jsonCodec, optional } from './record-codec.js';
import type { Txn } from './txn.js';

/** Messages from a contact whose identity changed, held (undecrypted) until the user trusts; the oldest are dropped past this. */
export const MAX_QUARANTINED = 500;

export interface IdentityRecord {
  username: string;
  /** The trusted identity public key, base64. */
  trusted?: string;
  /** A changed key awaiting `trust`. */
  pending?: { key: string; seenAt: number };
}

export const identityCodec = jsonCodec<IdentityRecord>('identity key', (v) => {
  if (!isObj(v) || !isStr(v['username'], 64) || !optional(v['trusted'], (x): x is string => isStr(x, 128))) return undefined;
  const p = v['pending'];
  if (p !== undefined && !(isObj(p) && isStr(p['key'], 128) && isInt(p['seenAt']))) return undefined;
  const r: IdentityRecord = { username: v['username'] };
  if (v['trusted'] !== undefined) r.trusted = v['trusted'] as string;
  if (p !== undefined) r.pending = { key: (p as { key: string }).key, seenAt: (p as { seenAt: number }).seenAt };
  return r;
});

export interface HeldMessage {
  serverId: string;
  from: string;
  fromDevice: number;
  type: 'prekey' | 'whisper';
  serverTimestamp: number;
  receivedAt: number;
}

export const heldCodec = blobCodec<HeldMessage>('held message', (v) => {
  if (!isObj(v)) return undefined;
  const { serverId, from, fromDevice, type, serverTimestamp, receivedAt } = v;
  if (!isStr(serverId, 64) || !isStr(from, 64) || !isInt(fromDevice, 1) || (type !== 'prekey' && type !== 'whisper') || !isInt(serverTimestamp) || !isInt(receivedAt)) return undefined;
  return { serverId, from, fromDevice, type, serverTimestamp, receivedAt };
});

export interface SafetyNumberInfo {
  contact: string;
  /** 60 digits, in 12 groups of 5 when shown. */
  displayable: string;
  /** Which key the number is for: the trusted one, a changed one awaiting trust, or one just fetched. */
  keyState: 'trusted' | 'changed' | 'unverified';
}

export function untrustedError(contact: string): ClientError {
  return new ClientError(
    'UNTRUSTED_IDENTITY',
    `the safety number with ${contact} has changed; compare it (tacit safety-number ${contact}) and run tacit trust ${contact} to continue`,
    { contact },
  );
}

export class Trust {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
  }

  identity(t: Txn, contact: string): Promise<IdentityRecord | undefined> {
    return t.read(identityCodec, this.#core.keys.identity(contact));
  }

  /** Whether everything from and to `contact` waits for `trust`. */
  async isPending(t: Txn, contact: string): Promise<boolean> {
    return (await this.identity(t, contact))?.pending !== undefined;
  }

  /**
   * TOFU: the first key seen is trusted; a different one later is recorded as pending and the
   * returned error is to be thrown by the caller after the change commits (so the pending key
   * is stored even though the operation fails).
   */
  async check(t: StateTxn, contact: string, keyB64: string): Promise<ClientError | undefined> {
    // Our own account: pinned to our identity key, never trusted on first use, never "changed".
    if (contact === this.#core.account.username) {
      return bytesEqual(unb64(keyB64), this.#core.identity.publicKey.serialize())
        ? undefined
        : new ClientError('UNTRUSTED_IDENTITY', 'the server lists a different identity key for your own account; nothing is sent to those devices', { contact });
    }
    const rec = await this.identity(t, contact);
    if (rec?.trusted === undefined) {
      t.write(identityCodec, this.#core.keys.identity(contact), { ...rec, username: contact, trusted: keyB64 });
      return undefined;
    }
    if (rec.trusted === keyB64) return undefined;
    return this.changed(t, contact, keyB64);
  }

  /** Records `keyB64` as a changed key for `contact` (telling the app once per new key). */
  async changed(t: StateTxn, contact: string, keyB64: string): Promise<ClientError> {
    const rec = (await this.identity(t, contact)) ?? { username: contact };
    if (rec.pending?.key !== keyB64) {
      t.write(identityCodec, this.#core.keys.identity(contact), { ...rec, pending: { key: keyB64, seenAt: this.#core.now() } });
      t.afterCommit(() => this.#core.events.emit('identity-changed', { contact }));
    }
    return untrustedError(contact);
  }

  /** Accepts `keyB64` for `contact`; returns whether it replaced a different trusted key. */
  async accept(t: StateTxn, contact: string, keyB64: string): Promise<boolean> {
    const rec = await this.identity(t, contact);
    const replaced = rec?.trusted !== undefined && rec.trusted !== keyB64;
    t.write(identityCodec, this.#core.keys.identity(contact), { username: contact, trusted: keyB64 });
    return replaced;
  }

  /** Contacts whose identity changed and who wait for `trust`, sorted. */
  async changedIdentities(): Promise<string[]> {
    const out: string[] = [];
    for (const r of await this.#core.view().list(PREFIX.identity)) {
      const rec = identityCodec.decode(r.value);
      if (rec.pending !== undefined) out.push(rec.username);
    }
    return out.sort();
  }

  /** Holds an envelope until the user decides about `from`'s new key. */
  hold(t: StateTxn, m: HeldMessage, body: Uint8Array): void {
    t.write(heldCodec, PREFIX.quarantine + seqKey(t.nextSeq()), { meta: m, blob: body });
    t.counters.quarantined++;
  }

  /** Drops the oldest held envelopes past MAX_QUARANTINED (call once per change, after holding). */
  async bound(t: StateTxn): Promise<void> {
    const excess = t.counters.quarantined - MAX_QUARANTINED;
    if (excess <= 0) return;
    for (const r of await t.list(PREFIX.quarantine, { limit: excess })) {
      t.delete(r.key);
      t.counters.quarantined--;
    }
  }

  /** Takes every held envelope of `contact` out of the quarantine, oldest first. */
  async release(t: StateTxn, contact: string): Promise<{ meta: HeldMessage; body: Uint8Array }[]> {
    const out: { meta: HeldMessage; body: Uint8Array }[] = [];
    for (const r of await t.list(PREFIX.quarantine)) {
      const { meta, blob } = heldCodec.decode(r.value);
      if (meta.from !== contact) continue;
      t.delete(r.key);
      t.counters.quarantined--;
      out.push({ meta, body: blob });
    }
    return out;
  }

  /** The safety number for the trusted key, the pending one, or (if none) `fetchKey()`'s. */
  async safetyNumber(contact: string, fetchKey: () => Promise<string>): Promise<SafetyNumberInfo> {
    const rec = await this.identity(this.#core.view(), contact);
    let keyB64: string;
    let keyState: SafetyNumberInfo['keyState'];
    if (rec?.pending) {
      keyB64 = rec.pending.key;
      keyState = 'changed';
    } else if (rec?.trusted) {
      keyB64 = rec.trusted;
      keyState = 'trusted';
    } else {
      keyB64 = await fetchKey();
      keyState = 'unverified';
    }
    const a = this.#core.account;
    const fp = safetyNumber(this.#core.backend, utf8Encode(a.username), this.#core.identity.publicKey, utf8Encode(contact), PublicKey.deserialize(unb64(keyB64)));
    return { contact, displayable: fp.displayable, keyState };
  }
}
