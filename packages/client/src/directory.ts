/**
 * The device directory: which devices each contact has (from the server's device list, cached
 * for DEVICE_LIST_TTL_MS), and one usable session per device before anything is encrypted for
 * it. New or re-installed devices get a fresh bundle; removed devices lose their session; the
 * identity key must be the trusted one (trust.ts).
 *
 * Records: `ct/<user>` (username, devices, when added) and the sessions (`ses/<user>/<device>`,
 * written by the protocol stores).
 */
import { fromBase64, type DeviceBundle, type DeviceListResponse } from '@tacit/api';
import { isProtocolError, KyberPublicKey, ProtocolAddress, PublicKey, UntrustedIdentityError, type PreKeyBundle, type SessionManager } from '@tacit/protocol';
import { toBase64 } from './bytes.js';
import type { Core, StateTxn } from './core.js';
import { ClientError } from './errors.js';
import type { HttpApi } from './http.js';
import { keyNumber, PREFIX } from './keys.js';
import { loadSession, sessionCodec } from './protocol-stores.js';
import { isInt, isObj, isStr, jsonCodec, optional } from './record-codec.js';
import type { Trust } from './trust.js';
import type { Txn } from './txn.js';

/** Device list answers are reused this long by a running client before asking the server again, ms. */
export const DEVICE_LIST_TTL_MS = 60_000;
/** Devices remembered per contact (the server allows far fewer per account). */
export const MAX_CONTACT_DEVICES = 100;

export interface ContactRecord {
  username: string;
  /** Devices we know of, with their registration ids (from the server's device list). */
  devices: { deviceId: number; registrationId: number }[];
  addedAt: number;
}

export const contactCodec = jsonCodec<ContactRecord>('contact', (v) => {
  if (!isObj(v) || !isStr(v['username'], 64) || !isInt(v['addedAt']) || !Array.isArray(v['devices']) || v['devices'].length > MAX_CONTACT_DEVICES) return undefined;
  const devices: ContactRecord['devices'] = [];
  for (const d of v['devices'] as unknown[]) {
    if (!isObj(d) || !isInt(d['deviceId'], 1) || !optional(d['registrationId'], isInt)) return undefined;
    devices.push({ deviceId: d['deviceId'], registrationId: (d['registrationId'] as number | undefined) ?? 0 });
  }
  return { username: v['username'], devices, addedAt: v['addedAt'] };
});

export class Directory {
  readonly #core: Core;
  readonly #http: HttpApi;
  readonly #sessions: SessionManager;
  readonly #trust: Trust;
  readonly #cache = new Map<string, { at: number; list: DeviceListResponse }>();

  constructor(core: Core, http: HttpApi, sessions: SessionManager, trust: Trust) {
    this.#core = core;
    this.#http = http;
    this.#sessions = sessions;
    this.#trust = trust;
  }

  /** Drops the cached device list (a device re-registered, or the user trusted a new key). */
  forget(contact: string): void {
    this.#cache.delete(contact);
  }

  contact(t: Txn, username: string): Promise<ContactRecord | undefined> {
    return t.read(contactCodec, this.#core.keys.contact(username));
  }

  /** The contact's record, created if new. */
  async touch(t: StateTxn, username: string): Promise<ContactRecord> {
    const existing = await this.contact(t, username);
    if (existing) return existing;
    const c: ContactRecord = { username, devices: [], addedAt: this.#core.now() };
    t.write(contactCodec, this.#core.keys.contact(username), c);
    return c;
  }

  /** Remembers a device a message came from (until the next device list says otherwise). */
  async noteDevice(t: StateTxn, username: string, deviceId: number): Promise<void> {
    const c = await this.touch(t, username);
    if (c.devices.some((d) => d.deviceId === deviceId) || c.devices.length >= MAX_CONTACT_DEVICES) return;
    c.devices.push({ deviceId, registrationId: 0 });
    t.write(contactCodec, this.#core.keys.contact(username), c);
  }

  async contacts(): Promise<ContactRecord[]> {
    const t = this.#core.view();
    const out: ContactRecord[] = [];
    for (const r of await t.list(PREFIX.contact)) out.push(contactCodec.decode(r.value));
    return out.sort((a, b) => a.username.localeCompare(b.username));
  }

  /** Deletes the sessions of `contact` (all, or those whose device is not in `keep`). */
  async forgetSessions(t: StateTxn, contact: string, keep?: ReadonlySet<number>): Promise<void> {
    for (const r of await t.list(this.#core.keys.sessionsOf(contact))) if (!keep?.has(keyNumber(r.key))) t.delete(r.key);
  }

  /** The registration id of the install a session with this device belongs to, if known. */
  async sessionRegistrationId(t: Txn, contact: string, deviceId: number): Promise<number | undefined> {
    const b = await t.read(sessionCodec, this.#core.keys.session(contact, deviceId));
    const id = b === undefined ? null : loadSession(b, contact, deviceId).remoteRegistrationId();
    return id !== null && id > 0 ? id : undefined;
  }

  async deviceList(contact: string, fresh: boolean): Promise<DeviceListResponse> {
    const now = this.#core.now();
    const cached = this.#cache.get(contact);
    if (!fresh && cached && now - cached.at < DEVICE_LIST_TTL_MS && now >= cached.at) return cached.list;
    let list: DeviceListResponse;
    try {
      list = await this.#http.deviceList(contact);
    } catch (e) {
      if (e instanceof ClientError && e.code === 'SERVER' && e.serverCode === 'NOT_FOUND') {
        throw new ClientError('UNKNOWN_USER', `no user named ${contact} on the server`, { contact });
      }
      throw e;
    }
    if (list.username !== contact) throw new ClientError('BAD_RESPONSE', 'the server answered for a different user');
    this.#cache.set(contact, { at: this.#core.now(), list });
    return list;
  }

  /**
   * Makes sure there is a usable session with every current device of `contact` and that the
   * contact's identity key is the trusted one. Returns the device ids to encrypt for. Runs under
   * the contact's peer lock; network calls happen outside the state lock.
   */
  async prepareSessions(contact: string, exclude?: number): Promise<number[]> {
    let list: DeviceListResponse;
    try {
      list = await this.deviceList(contact, false);
    } catch (e) {
      // Offline: keep writing to the devices we already have sessions with (and a trusted key
      // for); the relay queues the messages until the server is back. Nothing new is trusted.
      const known = e instanceof ClientError && (e.code === 'NETWORK' || e.code === 'TIMEOUT') ? await this.knownDevices(contact) : undefined;
      if (known === undefined) throw e;
      return known.filter((d) => d !== exclude);
    }
    // Our own account: this device is not one to write to.
    if (exclude !== undefined) list = { ...list, devices: list.devices.filter((d) => d.deviceId !== exclude) };
    if (exclude !== undefined && list.devices.length === 0) return [];
    if (list.devices.length === 0) throw new ClientError('UNKNOWN_USER', `${contact} has no devices`, { contact });
    const checked = await this.#core.mutate(async (t) => {
      const refused = await this.#trust.check(t, contact, list.identityKey);
      if (refused) return { refused };
      const current = new Set(list.devices.map((d) => d.deviceId));
      // Sessions with devices that are gone are closed.
      await this.forgetSessions(t, contact, current);
      const c = await this.touch(t, contact);
      c.devices = list.devices.slice(0, MAX_CONTACT_DEVICES).map((d) => ({ deviceId: d.deviceId, registrationId: d.registrationId }));
      t.write(contactCodec, this.#core.keys.contact(contact), c);
      const missing: number[] = [];
      for (const d of list.devices) {
        const raw = await t.read(sessionCodec, this.#core.keys.session(contact, d.deviceId));
        const record = raw === undefined ? null : loadSession(raw, contact, d.deviceId);
        const usable = record !== null && record.hasCurrentSession(this.#core.now());
        // A different registration id means the device was reinstalled: its old session is dead.
        const sameInstall = usable && (record.remoteRegistrationId() === null || record.remoteRegistrationId() === d.registrationId);
        if (!usable || !sameInstall) missing.push(d.deviceId);
      }
      return { missing };
    });
    if ('refused' in checked) throw checked.refused;
    for (const deviceId of checked.missing) {
      const bundle = await this.#fetchBundle(contact, deviceId);
      const refused = await this.#core.mutate(async (t) => {
        const r = await this.#trust.check(t, contact, bundle.identityKey);
        if (r) return r;
        try {
          await this.#sessions.processPreKeyBundle(new ProtocolAddress(contact, deviceId), toPreKeyBundle(bundle.identityKey, bundle.device));
        } catch (e) {
          if (e instanceof UntrustedIdentityError) return this.#trust.changed(t, contact, toBase64(e.identityKey.serialize()));
          if (isProtocolError(e)) throw new ClientError('BAD_RESPONSE', `the key bundle of ${contact} is invalid (${e.code})`, { contact });
          throw e;
        }
        return undefined;
      });
      if (refused) throw refused;
    }
    return list.devices.map((d) => d.deviceId);
  }

  /** Devices of `contact` with a usable session under the trusted identity, or undefined if none. */
  async knownDevices(contact: string): Promise<number[] | undefined> {
    const t = this.#core.view();
    const id = await this.#trust.identity(t, contact);
    if (id?.trusted === undefined || id.pending !== undefined) return undefined;
    const devices: number[] = [];
    for (const d of (await this.contact(t, contact))?.devices ?? []) {
      const raw = await t.read(sessionCodec, this.#core.keys.session(contact, d.deviceId));
      if (raw !== undefined && loadSession(raw, contact, d.deviceId).hasCurrentSession(this.#core.now())) devices.push(d.deviceId);
    }
    return devices.length > 0 ? devices : undefined;
  }

  async #fetchBundle(contact: string, deviceId: number): Promise<{ identityKey: string; device: DeviceBundle }> {
    const b = await this.#http.bundle(contact, deviceId);
    const device = b.devices.find((d) => d.deviceId === deviceId);
    if (b.username !== contact || device === undefined) throw new ClientError('BAD_RESPONSE', `the server sent no key bundle for ${contact}`, { contact });
    return { identityKey: b.identityKey, device };
  }
}

function toPreKeyBundle(identityKeyB64: string, d: DeviceBundle): PreKeyBundle {
  const k = (s: string): Uint8Array => {
    const out = fromBase64(s);
    if (out === undefined) throw new ClientError('BAD_RESPONSE', 'malformed key in bundle');
    return out;
  };
  try {
    return {
      registrationId: d.registrationId,
      deviceId: d.deviceId,
      identityKey: PublicKey.deserialize(k(identityKeyB64)),
      signedPreKeyId: d.signedPreKey.keyId,
      signedPreKey: PublicKey.deserialize(k(d.signedPreKey.publicKey)),
      signedPreKeySignature: k(d.signedPreKey.signature),
      kyberPreKeyId: d.kyberPreKey.keyId,
      kyberPreKey: KyberPublicKey.deserialize(k(d.kyberPreKey.publicKey)),
      kyberPreKeySignature: k(d.kyberPreKey.signature),
      ...(d.preKey ? { preKeyId: d.preKey.keyId, preKey: PublicKey.deserialize(k(d.preKey.publicKey)) } : {}),
    };
  } catch (e) {
    if (e instanceof ClientError) throw e;
    throw new ClientError('BAD_RESPONSE', 'the key bundle holds an invalid key');
  }
}
