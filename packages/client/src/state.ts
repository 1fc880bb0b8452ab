/**
 * The client's persistent state: account, private keys, sessions, trusted identities, contacts,
 * received messages, the outbox and duplicate-suppression memory. One versioned JSON document,
 * written whole through the StateVault (which encrypts it), so a session advance and the message
 * it produced are stored in one atomic write.
 *
 * Protocol records are kept as their own serialized bytes (base64 here); the protocol library
 * owns their format.
 */
import { fromBase64, toBase64, utf8Decode, utf8Encode } from './bytes.js';
import type { UploadKeysRequest } from '@tacit/api';
import { ClientError } from './errors.js';

export const STATE_VERSION = 1;

/** Received messages kept on disk. Oldest already-read ones are dropped first past this. */
export const MAX_STORED_MESSAGES = 5_000;
/** Server envelope ids remembered to drop redeliveries; far above the server's in-flight window. */
export const MAX_SEEN_SERVER_IDS = 4_096;
/** (sender, message id) pairs remembered to drop re-encrypted resends of one message. */
export const MAX_SEEN_MESSAGE_IDS = 8_192;
/** Messages from a contact whose identity changed, held (undecrypted) until the user trusts or for ever lost past this. */
export const MAX_QUARANTINED = 500;
/** Outgoing ciphertexts waiting for the server's `sent`. Bounds a client that is offline for long. */
export const MAX_OUTBOX = 2_000;

export interface AccountState {
  server: string;
  username: string;
  deviceId: number;
  registrationId: number;
  /** Base64 device secret (authenticates this device to the server). */
  secret: string;
  /** Serialized IdentityKeyPair, base64. */
  identityKeyPair: string;
  createdAt: number;
  /** False until the server accepted the registration. */
  registered: boolean;
}

export interface StoredKey {
  /** Serialized record, base64. */
  record: string;
  createdAt: number;
  /** Set when the key was replaced on the server; the private key is kept for a grace period. */
  retiredAt?: number;
}

export interface StoredKyberKey extends StoredKey {
  lastResort: boolean;
}

export interface ContactState {
  /** Devices we know of, with their registration ids (from the server's device list). */
  devices: { deviceId: number; registrationId: number }[];
  addedAt: number;
  /** When we last fetched the device list. */
  checkedAt?: number;
}

export interface StoredMessage {
  /** Server envelope id of the delivery that carried it. */
  serverId: string;
  from: string;
  fromDevice: number;
  /** Sender-chosen message id. */
  id: string;
  text: string;
  sentAt: number;
  /** Server's store timestamp. */
  serverTimestamp: number;
  receivedAt: number;
  /** True once shown to the user (`recv` prints each message once). */
  read: boolean;
}

export interface OutboxEntry {
  /** Client correlation id of the `send` frame (unique per entry). */
  clientId: string;
  messageId: string;
  to: string;
  deviceId: number;
  /** The registration id of the session's remote install, sent so the server can refuse a stale device. Absent in older states. */
  registrationId?: number;
  type: 'prekey' | 'whisper';
  /** Base64 ciphertext: resent unchanged after a reconnect, never re-encrypted. */
  body: string;
  createdAt: number;
}

export interface QuarantinedMessage {
  serverId: string;
  from: string;
  fromDevice: number;
  type: 'prekey' | 'whisper';
  body: string;
  serverTimestamp: number;
  receivedAt: number;
}

export interface PendingIdentity {
  /** Base64 of the new, not yet trusted, identity public key. */
  key: string;
  seenAt: number;
}

export interface StateData {
  v: typeof STATE_VERSION;
  account: AccountState;
  preKeys: Record<string, StoredKey>;
  nextPreKeyId: number;
  signedPreKeys: Record<string, StoredKey>;
  currentSignedPreKeyId: number;
  nextSignedPreKeyId: number;
  kyberPreKeys: Record<string, StoredKyberKey>;
  currentLastResortKyberId: number;
  nextKyberPreKeyId: number;
  /** Key `${username}.${deviceId}` → serialized SessionRecord, base64. */
  sessions: Record<string, string>;
  /** Username → trusted identity public key, base64. */
  identities: Record<string, string>;
  /** Username → a changed identity key awaiting `trust`. */
  pendingIdentities: Record<string, PendingIdentity>;
  contacts: Record<string, ContactState>;
  messages: StoredMessage[];
  outbox: OutboxEntry[];
  seenServerIds: string[];
  seenMessageIds: string[];
  quarantine: QuarantinedMessage[];
  /** A key upload planned (private keys already stored) but not yet accepted by the server. */
  pendingUpload: UploadKeysRequest | null;
}

export function encodeState(data: StateData): Uint8Array {
  return utf8Encode(JSON.stringify(data));
}

/** Decodes and checks the shape of the top level; records inside are checked when used. */
export function decodeState(bytes: Uint8Array): StateData {
  let v: unknown;
  try {
    v = JSON.parse(utf8Decode(bytes));
  } catch {
    throw new ClientError('STATE_CORRUPT', 'the local state does not parse');
  }
  if (typeof v !== 'object' || v === null || (v as { v?: unknown }).v !== STATE_VERSION) {
    throw new ClientError('STATE_CORRUPT', 'the local state has an unknown version');
  }
  const d = v as StateData;
  const objects = ['account', 'preKeys', 'signedPreKeys', 'kyberPreKeys', 'sessions', 'identities', 'pendingIdentities', 'contacts'] as const;
  const arrays = ['messages', 'outbox', 'seenServerIds', 'seenMessageIds', 'quarantine'] as const;
  for (const k of objects) if (typeof d[k] !== 'object' || d[k] === null) throw new ClientError('STATE_CORRUPT', `the local state lacks ${k}`);
  for (const k of arrays) if (!Array.isArray(d[k])) throw new ClientError('STATE_CORRUPT', `the local state lacks ${k}`);
  return d;
}

export function b64(bytes: Uint8Array): string {
  return toBase64(bytes);
}

/** Base64 from our own state; damage is STATE_CORRUPT. */
export function unb64(s: string): Uint8Array {
  const out = fromBase64(s);
  if (out === undefined) throw new ClientError('STATE_CORRUPT', 'the local state holds malformed bytes');
  return out;
}

/** Keeps the newest `max` entries of a FIFO memory. */
export function trimFront<T>(list: T[], max: number): void {
  if (list.length > max) list.splice(0, list.length - max);
}
