/**
 * Storage interfaces. The server talks only to `Store`; adapters (SQLite for one node, PostgreSQL
 * + Redis for several) implement it and pass the same conformance suite (test/store-conformance.ts).
 *
 * Everything is bytes (`Uint8Array`) here; base64 lives at the HTTP/WebSocket edge.
 * Message ids are positive integers, strictly increasing in commit order per recipient device,
 * never reused (clients drop duplicates by id).
 */
import type { CIPHERTEXT_TYPES, CiphertextType } from '@tacit/api';
import type { FanoutResult, NewFanout } from './fanout.js';

export interface Address {
  /** Folded username. */
  username: string;
  deviceId: number;
}

export interface OneTimePreKey {
  keyId: number;
  publicKey: Uint8Array;
}

export interface SignedKey {
  keyId: number;
  publicKey: Uint8Array;
  signature: Uint8Array;
}

export interface DeviceKeys {
  signedPreKey: SignedKey;
  kyberLastResortKey: SignedKey;
  preKeys: OneTimePreKey[];
  kyberPreKeys: SignedKey[];
}

export interface NewDevice {
  registrationId: number;
  secretSalt: Uint8Array;
  secretHash: Uint8Array;
  keys: DeviceKeys;
  /** Shown in the account's device list; '' when none was given. */
  name?: string;
  /** When the device registered, ms since the epoch (0 when unknown). */
  createdAt?: number;
}

/** One device of an account as its owner lists it (GET /v1/devices). */
export interface DeviceSummary {
  deviceId: number;
  registrationId: number;
  name: string;
  createdAt: number;
  /** Last connection, as `touchDevice` recorded it; 0 if never. */
  lastSeenAt: number;
}

/** What a WebSocket ticket stands for: a device, as of the credentials it had when it minted the ticket. */
export interface Ticket {
  device: Address;
  credential: Uint8Array;
}

export interface DeviceAuth {
  registrationId: number;
  secretSalt: Uint8Array;
  secretHash: Uint8Array;
}

export interface AccountInfo {
  username: string;
  identityKey: Uint8Array;
  /** Admins create invites, list accounts and reset them (docs/OPERATIONS.md). */
  admin: boolean;
  devices: { deviceId: number; registrationId: number }[];
}

/** One account as an admin sees it. */
export interface AccountSummary {
  username: string;
  admin: boolean;
  createdAt: number;
  devices: { deviceId: number; registrationId: number }[];
}

export interface DeviceBundleRecord {
  deviceId: number;
  registrationId: number;
  signedPreKey: SignedKey;
  kyberPreKey: SignedKey;
  kyberPreKeyIsLastResort: boolean;
  preKey?: OneTimePreKey;
}

/** Libsignal's ciphertext type numbers: 3 = PreKeySignalMessage, 2 = SignalMessage, 7 = SenderKeyMessage. */
export type CiphertextKind = (typeof CIPHERTEXT_TYPES)[CiphertextType];

/** The wire name of each stored kind (the inverse of the api's CIPHERTEXT_TYPES). */
export const CIPHERTEXT_TYPE_OF_KIND: Readonly<Record<CiphertextKind, CiphertextType>> = { 2: 'whisper', 3: 'prekey', 7: 'sender-key' };

export interface NewMessage {
  to: Address;
  /**
   * The recipient's registration id the sender expects, if it said: when the device's current
   * one differs, the message is refused with STALE_DEVICE (checked in the same transaction as
   * the insert, so a re-registration cannot slip in between).
   */
  expectedRegistrationId?: number;
  from: Address;
  kind: CiphertextKind;
  body: Uint8Array;
  timestamp: number;
  expiresAt: number;
  /**
   * The send's digest (resend.ts): when the sending device stored a message with this digest
   * within RESEND_WINDOW_MS and among its last RESEND_MEMORY_PER_DEVICE sends, nothing is stored
   * and the result names that copy (`resent`). Absent: always stored (fan-outs).
   */
  digest?: Uint8Array;
}

export interface StoredMessage extends NewMessage {
  id: number;
}

export type EnqueueResult =
  | {
      ok: true;
      id: number;
      /**
       * Stores shared by several nodes: the id of the message before this one in its recipient's
       * queue when it was committed (0 if none). A node that has handed the recipient's connection
       * everything up to `after` may push this message at once; otherwise an older message it has
       * not seen (committed by another node) may exist, and it pages the queue instead.
       */
      after?: number;
      /**
       * Set when this send is a resend of a message the device already stored (see
       * NewMessage.digest): `id` is that copy's, this is its timestamp, and nothing new was stored.
       */
      resent?: number;
    }
  | { ok: false; code: 'NOT_FOUND' | 'STALE_DEVICE' | 'MAILBOX_FULL' };

export type CreateAccountResult = 'ok' | 'USERNAME_TAKEN' | 'INVITE_INVALID';

/** What `removeAccount` deleted, for the operator's report. Counts only, never key bytes. */
export interface RemovedAccount {
  devices: number;
  /** One-time EC pre-keys still on the server. */
  preKeys: number;
  /** One-time Kyber pre-keys still on the server (each device's last-resort key goes with the device). */
  kyberPreKeys: number;
  /** Messages queued to the account's devices and not yet delivered. */
  messages: number;
}

/** What `Store.removeDevice` did. */
export type RemoveDeviceResult = 'removed' | 'NOT_FOUND' | 'LAST_DEVICE';

export interface Store {
  /**
   * Creates an account with device 1, consuming the invite (by hash) in the same transaction when
   * one is given. Nothing is written unless everything is. The first account of an empty server
   * is an admin (decided inside the transaction: two concurrent first registrations make one admin).
   */
  createAccount(
    account: { username: string; identityKey: Uint8Array; createdAt: number },
    device: NewDevice,
    invite: { hash: Uint8Array; now: number } | null,
  ): Promise<CreateAccountResult>;
  /** Adds a device with the lowest free device id, unless the account has `maxDevices`. */
  addDevice(username: string, device: NewDevice, maxDevices: number, maxDeviceId: number): Promise<number | 'TOO_MANY_DEVICES' | 'NOT_FOUND'>;
  /** The account's devices with their names and dates, by device id; undefined when there is no such account. */
  listDevices(username: string): Promise<DeviceSummary[] | undefined>;
  /** Records that a device connected at `at` (only ever moves forward). */
  touchDevice(device: Address, at: number): Promise<void>;
  /**
   * Removes a device, its keys and its queue, unless it is the account's last device
   * (`LAST_DEVICE`, nothing changed: an account without devices could never be opened again and
   * its username would stay taken). The count and the delete are one transaction, so concurrent
   * removals of an account's last two devices leave one. `NOT_FOUND` when there is no such device.
   */
  removeDevice(device: Address): Promise<RemoveDeviceResult>;
  /**
   * Removes an account with all its devices, their keys and the messages queued to them, in one
   * transaction; the username is free afterwards. Messages the account sent that still wait in
   * other devices' queues stay. Undefined when there is no such account.
   */
  removeAccount(username: string): Promise<RemovedAccount | undefined>;
  getDeviceAuth(device: Address): Promise<DeviceAuth | undefined>;
  getAccount(username: string): Promise<AccountInfo | undefined>;
  countAccounts(): Promise<number>;
  /** Messages stored and not yet acknowledged, over every device (GET /metrics: queue depth). */
  countQueued(): Promise<number>;
  /** Accounts sorted by username, at most `limit`; `truncated` when there were more. */
  listAccounts(limit: number): Promise<{ accounts: AccountSummary[]; truncated: boolean }>;
  /** Makes an account an admin or not; false when there is no such account. */
  setAdmin(username: string, admin: boolean): Promise<boolean>;

  /** Replaces the given keys of a device (a one-time list replaces all one-time keys of that kind). */
  replaceKeys(device: Address, keys: Partial<DeviceKeys>): Promise<boolean>;
  /**
   * Adds one-time keys to a device's (POST /v1/keys/one-time), atomically: a key whose id the
   * device holds replaces it; `full` (nothing added) when the device would then hold more than
   * `maxHeld` keys of a kind; `unknown` when there is no such device.
   */
  addOneTimeKeys(device: Address, keys: Pick<Partial<DeviceKeys>, 'preKeys' | 'kyberPreKeys'>, maxHeld: number): Promise<'added' | 'full' | 'unknown'>;
  keyCounts(device: Address): Promise<{ preKeys: number; kyberPreKeys: number }>;
  /**
   * Takes one bundle per device (or for one device), removing each one-time key it hands out,
   * atomically: concurrent calls never get the same one-time key.
   */
  takeBundles(username: string, deviceId?: number): Promise<{ identityKey: Uint8Array; devices: DeviceBundleRecord[] } | undefined>;

  createInvite(hash: Uint8Array, createdAt: number, expiresAt: number): Promise<void>;

  /**
   * One durable write: enqueues messages (results in input order) and deletes acknowledged ones.
   * Returns only after the write is durable.
   *
   * `onAssigned`, if the store can, is called once with the same results after the messages have
   * their ids but before the write is durable, so the relay can hand them to online recipients
   * while the commit is in flight (never acknowledging them to their senders). Should the write
   * then fail, ids announced this way are never given to other messages. A store that cannot
   * tell earlier never calls it.
   */
  writeBatch(messages: NewMessage[], acks: { to: Address; id: number }[], maxQueue: number, onAssigned?: (results: EnqueueResult[]) => void): Promise<EnqueueResult[]>;
  /**
   * One multi-recipient send (fanout.ts): checks every named account's device list against its
   * devices and stores a message for every named device, in one durable transaction, or stores
   * nothing and says why. Devices whose queue holds `maxQueue` messages are skipped and listed.
   * Serialized with `writeBatch` (the relay calls both from one writer), so ids still increase in
   * commit order per device.
   */
  writeFanout(fanout: NewFanout, maxQueue: number): Promise<FanoutResult>;
  /** Oldest first, ids > afterId, unexpired at `now`. */
  fetchQueue(to: Address, afterId: number, limit: number, now: number): Promise<StoredMessage[]>;
  /** Deletes expired messages and invites, and remembered sends older than RESEND_WINDOW_MS; returns how many messages. */
  expire(now: number): Promise<number>;

  /**
   * Single-use tickets, by hash, each bound to the credentials of the device that minted it
   * (`credential`: a digest of its secret hash; the caller compares it with the device's current
   * one at redemption). `removeDevice` and `removeAccount` delete the tickets of what they remove.
   */
  putTicket(hash: Uint8Array, ticket: Ticket, expiresAt: number): Promise<void>;
  takeTicket(hash: Uint8Array, now: number): Promise<Ticket | undefined>;

  close(): Promise<void>;
}

export function addressKey(a: Address): string {
  return `${a.username}.${a.deviceId}`;
}
