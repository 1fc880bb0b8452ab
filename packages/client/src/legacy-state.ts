/**
 * The state format of the release before record storage (format 1), read only to upgrade it
 * (upgrade.ts): one versioned JSON document holding account, private keys, sessions, trusted
 * identities, contacts, received messages, the outbox and duplicate-suppression memory, sealed
 * whole (Node: `state.sealed`; browser: the `client-state` IndexedDB record).
 */
import { utf8Decode } from './bytes.js';
import type { UploadKeysRequest } from '@tacit/api';
import type { Account } from './account.js';
import { ClientError } from './errors.js';

export const STATE_VERSION = 1;

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
  account: Account;
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

