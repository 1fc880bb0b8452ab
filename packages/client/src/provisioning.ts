/**
 * Signal's provisioning cipher (DESIGN §3.1) and the link code.
 *
 * The new device makes an ephemeral X25519 key pair and shows a link code holding its
 * provisioning channel's address and the public key. The existing device encrypts the
 * provisioning message to it:
 *
 *   shared = X25519(sender ephemeral private, device public)
 *   aes | mac = HKDF-SHA256(ikm = shared, salt = 32 zero bytes, info "TextSecure Provisioning Message", 64)
 *   body = 0x01 || IV (16) || AES-256-CBC(aes, IV, message) || HMAC-SHA256(mac, 0x01 || IV || ciphertext)
 *
 * and sends `sender ephemeral public (33) || body` (Signal's ProvisionEnvelope {publicKey, body},
 * as bytes). Decryption checks the version byte and the MAC (constant time) before it decrypts.
 */
import { bytesEqual, concatBytes, PublicKey, type CryptoBackend } from '@tacit/protocol';
import { fromBase64, MAX_PROVISIONING_MESSAGE_BYTES, PROVISIONING_ADDRESS_MAX_LENGTH } from '@tacit/api';
import { ClientError } from './errors.js';
import { utf8Encode } from './bytes.js';

export const PROVISIONING_INFO = 'TextSecure Provisioning Message';
export const PROVISIONING_VERSION = 0x01;
const IV_BYTES = 16;
const MAC_BYTES = 32;
const PUBLIC_KEY_BYTES = 33;
/** Scheme of a link code: `tacit-link:<channel address>.<base64url ephemeral public key>`. */
export const LINK_CODE_PREFIX = 'tacit-link:';

export interface ProvisioningKeyPair {
  /** 32-byte clamped X25519 private key. */
  privateKey: Uint8Array;
  /** 33-byte public key (0x05 || u). */
  publicKey: Uint8Array;
}

export function generateProvisioningKeyPair(backend: CryptoBackend): ProvisioningKeyPair {
  const kp = backend.x25519GenerateKeyPair();
  return { privateKey: kp.privateKey, publicKey: concatBytes(new Uint8Array([0x05]), kp.publicKey) };
}

function keys(backend: CryptoBackend, privateKey: Uint8Array, publicKey33: Uint8Array): { aes: Uint8Array; mac: Uint8Array } {
  let pub: PublicKey;
  try {
    pub = PublicKey.deserialize(publicKey33);
  } catch {
    throw new ClientError('INVALID_ARGUMENT', 'the link code holds an invalid public key');
  }
  const shared = backend.x25519(privateKey, pub.serialize().subarray(1));
  if (shared.every((b) => b === 0)) throw new ClientError('INVALID_ARGUMENT', 'the link code holds an unusable public key');
  const okm = backend.hkdfSha256(shared, new Uint8Array(32), utf8Encode(PROVISIONING_INFO), 64);
  return { aes: okm.subarray(0, 32), mac: okm.subarray(32, 64) };
}

/** Encrypts `message` to the new device's ephemeral public key. */
export function encryptProvisioning(backend: CryptoBackend, devicePublicKey: Uint8Array, message: Uint8Array): Uint8Array {
  const eph = generateProvisioningKeyPair(backend);
  const k = keys(backend, eph.privateKey, devicePublicKey);
  const iv = backend.randomBytes(IV_BYTES);
  const ct = backend.aes256CbcEncrypt(k.aes, iv, message);
  const body = concatBytes(new Uint8Array([PROVISIONING_VERSION]), iv, ct);
  const mac = backend.hmacSha256(k.mac, body);
  const out = concatBytes(eph.publicKey, body, mac);
  if (out.length > MAX_PROVISIONING_MESSAGE_BYTES) throw new ClientError('INVALID_ARGUMENT', `the provisioning message is over ${MAX_PROVISIONING_MESSAGE_BYTES} bytes`);
  return out;
}

/** Decrypts a provisioning envelope with the new device's key pair; PROVISIONING_FAILED on anything wrong (nothing else said). */
export function decryptProvisioning(backend: CryptoBackend, own: ProvisioningKeyPair, envelope: Uint8Array): Uint8Array {
  const bad = (why: string) => new ClientError('PROVISIONING_FAILED', `the link message was refused: ${why}`);
  if (envelope.length < PUBLIC_KEY_BYTES + 1 + IV_BYTES + 16 + MAC_BYTES) throw bad('too short');
  const senderPublic = envelope.subarray(0, PUBLIC_KEY_BYTES);
  const body = envelope.subarray(PUBLIC_KEY_BYTES, envelope.length - MAC_BYTES);
  const mac = envelope.subarray(envelope.length - MAC_BYTES);
  if (body[0] !== PROVISIONING_VERSION) throw bad('unknown version');
  let k: { aes: Uint8Array; mac: Uint8Array };
  try {
    k = keys(backend, own.privateKey, senderPublic);
  } catch {
    throw bad('invalid sender key');
  }
  if (!bytesEqual(backend.hmacSha256(k.mac, body), mac)) throw bad('bad MAC');
  const iv = body.subarray(1, 1 + IV_BYTES);
  const pt = backend.aes256CbcDecrypt(k.aes, iv, body.subarray(1 + IV_BYTES));
  if (pt === null) throw bad('bad padding');
  return pt;
}

const b64url = (b: Uint8Array): string => {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};

export function formatLinkCode(address: string, publicKey: Uint8Array): string {
  return `${LINK_CODE_PREFIX}${address}.${b64url(publicKey)}`;
}

/** Parses a link code (surrounding white space allowed); INVALID_ARGUMENT when it is not one. */
export function parseLinkCode(code: string): { address: string; publicKey: Uint8Array } {
  const m = /^tacit-link:([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{44})$/.exec(code.trim());
  if (m === null || m[1]!.length > PROVISIONING_ADDRESS_MAX_LENGTH) throw new ClientError('INVALID_ARGUMENT', 'that is not a link code (it starts with tacit-link:)');
  const pk = fromBase64(m[2]!.replace(/-/g, '+').replace(/_/g, '/'));
  if (pk === undefined || pk.length !== PUBLIC_KEY_BYTES) throw new ClientError('INVALID_ARGUMENT', 'the link code holds an invalid public key');
  return { address: m[1]!, publicKey: pk };
}
