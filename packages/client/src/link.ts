/**
 * Linking devices, both sides (DESIGN §3.1; wire contract in @tacit/api linking.ts).
 *
 * New device (`awaitProvisioning`): opens the provisioning channel, shows the link code (channel
 * address + ephemeral public key), waits for the one encrypted provisioning message, decrypts it
 * (provisioning.ts) and returns what it holds. The caller then registers with the link token.
 *
 * Existing device (`provisioningMessage` + `encryptProvisioning`): asks the server for a link
 * token and sends the identity key pair, the username, the token and the contact list and group
 * states (never message history) to the code's key.
 */
import { fromBase64, toBase64, MAX_PROVISIONING_MESSAGE_BYTES, parseJson, username as usernameValidator, validateProvisioningFrame, linkToken } from '@tacit/api';
import { IdentityKeyPair, PublicKey, type CryptoBackend } from '@tacit/protocol';
import { utf8Decode, utf8Encode } from './bytes.js';
import { ClientError } from './errors.js';
import { decryptProvisioning, formatLinkCode, generateProvisioningKeyPair } from './provisioning.js';
import type { Socket, SocketFactory } from './relay.js';

/** Version of the provisioning message's plaintext. */
export const PROVISIONING_MESSAGE_VERSION = 1;
/** Contacts carried to a new device at most. */
export const MAX_SYNCED_CONTACTS = 1_000;
/** Group states carried to a new device at most (past MAX_PROVISIONING_MESSAGE_BYTES the oldest are left out). */
export const MAX_SYNCED_GROUPS = 200;
/** A new device waits this long for the link message by default (the server closes the channel at PROVISIONING_CHANNEL_TTL_MS). */
export const DEFAULT_LINK_TIMEOUT_MS = 10 * 60_000;

/** What an existing device tells a new one. */
export interface ProvisioningMessage {
  v: typeof PROVISIONING_MESSAGE_VERSION;
  username: string;
  /** Serialized IdentityKeyPair, base64. */
  identityKeyPair: string;
  token: string;
  /** The contacts and their trusted identity keys (base64), as the existing device has them. */
  contacts: { username: string; identityKey?: string }[];
  /** Encoded group payloads (`{grp:'state'}`), base64: the groups the account is in. */
  groups: string[];
}

export function encodeProvisioningMessage(m: ProvisioningMessage): Uint8Array {
  return utf8Encode(JSON.stringify(m));
}

/** Total: the message, or PROVISIONING_FAILED naming the field that is wrong. */
export function decodeProvisioningMessage(bytes: Uint8Array): ProvisioningMessage & { identity: IdentityKeyPair } {
  const bad = (what: string) => new ClientError('PROVISIONING_FAILED', `the link message is malformed (${what})`);
  if (bytes.length > MAX_PROVISIONING_MESSAGE_BYTES) throw bad('too large');
  let text: string;
  try {
    text = utf8Decode(bytes);
  } catch {
    throw bad('not UTF-8');
  }
  const parsed = parseJson(text);
  if (!parsed.ok || typeof parsed.value !== 'object' || parsed.value === null || Array.isArray(parsed.value)) throw bad('not an object');
  const o = parsed.value as Record<string, unknown>;
  if (o['v'] !== PROVISIONING_MESSAGE_VERSION) throw bad('version');
  const u = usernameValidator(o['username']);
  if (!u.ok) throw bad('username');
  const t = linkToken(o['token']);
  if (!t.ok) throw bad('token');
  const ikp = typeof o['identityKeyPair'] === 'string' ? fromBase64(o['identityKeyPair']) : undefined;
  let identity: IdentityKeyPair;
  try {
    if (ikp === undefined) throw bad('identity');
    identity = IdentityKeyPair.deserialize(ikp);
  } catch {
    throw bad('identity');
  }
  const contacts: ProvisioningMessage['contacts'] = [];
  const rawContacts = o['contacts'];
  if (!Array.isArray(rawContacts) || rawContacts.length > MAX_SYNCED_CONTACTS) throw bad('contacts');
  for (const c of rawContacts as unknown[]) {
    if (typeof c !== 'object' || c === null) throw bad('contacts');
    const cu = usernameValidator((c as Record<string, unknown>)['username']);
    const k = (c as Record<string, unknown>)['identityKey'];
    if (!cu.ok || (k !== undefined && !isIdentityKey(k))) throw bad('contacts');
    contacts.push({ username: cu.value, ...(k !== undefined ? { identityKey: k as string } : {}) });
  }
  const rawGroups = o['groups'];
  if (!Array.isArray(rawGroups) || rawGroups.length > MAX_SYNCED_GROUPS || !rawGroups.every((g) => typeof g === 'string' && fromBase64(g) !== undefined)) throw bad('groups');
  return { v: PROVISIONING_MESSAGE_VERSION, username: u.value, identityKeyPair: o['identityKeyPair'] as string, token: t.value, contacts, groups: rawGroups as string[], identity };
}

/** A serialized curve public key in base64 (0x05 || canonical u), as every identity key is checked where it is decoded. */
function isIdentityKey(k: unknown): k is string {
  const bytes = typeof k === 'string' ? fromBase64(k) : undefined;
  if (bytes === undefined) return false;
  try {
    PublicKey.deserialize(bytes);
    return true;
  } catch {
    return false;
  }
}

export interface AwaitProvisioningOptions {
  backend: CryptoBackend;
  connect: SocketFactory;
  /** ws(s):// URL of the provisioning channel. */
  url: string;
  /** Called once with the link code to show (and when the server closes the channel). */
  onCode: (code: string, expiresAt: number) => void;
  timeoutMs?: number;
}

/** Opens the channel, shows the code, waits for the message and decrypts it. */
export function awaitProvisioning(o: AwaitProvisioningOptions): Promise<ProvisioningMessage & { identity: IdentityKeyPair }> {
  const own = generateProvisioningKeyPair(o.backend);
  return new Promise((resolve, reject) => {
    let settled = false;
    let gotAddress = false;
    let socket: Socket | undefined;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        socket?.close(1000, 'done');
      } catch {
        // already closed
      }
      fn();
    };
    const timer = setTimeout(
      () => finish(() => reject(new ClientError('TIMEOUT', 'no device sent the link message in time; show a new code'))),
      o.timeoutMs ?? DEFAULT_LINK_TIMEOUT_MS,
    );
    // A factory that throws (a URL the socket refuses) must not leave the timer armed for minutes.
    const unreachable = () => new ClientError('NETWORK', 'could not open a link channel on the server');
    try {
      socket = o.connect(o.url, {
        open: () => undefined,
        message: (text) => {
          const p = parseJson(text);
          const f = p.ok ? validateProvisioningFrame(p.value) : undefined;
          if (f === undefined || !f.ok) return finish(() => reject(new ClientError('BAD_RESPONSE', 'the server sent a malformed provisioning frame')));
          if (f.value.type === 'address') {
            if (gotAddress) return finish(() => reject(new ClientError('BAD_RESPONSE', 'the server sent a second channel address')));
            gotAddress = true;
            o.onCode(formatLinkCode(f.value.address, own.publicKey), f.value.expiresAt);
            return;
          }
          const body = fromBase64(f.value.body);
          finish(() => {
            try {
              if (body === undefined) throw new ClientError('PROVISIONING_FAILED', 'the link message is not base64');
              resolve(decodeProvisioningMessage(decryptProvisioning(o.backend, own, body)));
            } catch (e) {
              reject(e);
            }
          });
        },
        close: (code) =>
          finish(() =>
            reject(
              gotAddress
                ? new ClientError('PROVISIONING_FAILED', `the link channel closed (${code}) before a device sent the link message; show a new code`)
                : unreachable(),
            ),
          ),
      });
    } catch {
      finish(() => reject(unreachable()));
    }
  });
}
