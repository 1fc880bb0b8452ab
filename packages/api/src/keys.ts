/**
 * Public key material as it travels in JSON. Bytes are canonical base64 (see base64.ts).
 * Signatures are XEdDSA by the account's identity key over the full serialized public key
 * (type byte included); the server verifies every one at upload (BAD_SIGNATURE otherwise).
 */
import {
  CURVE_KEY_TYPE,
  CURVE_PUBLIC_KEY_BYTES,
  KYBER_KEY_TYPE,
  KYBER_PUBLIC_KEY_BYTES,
  MAX_KEY_ID,
  MAX_KEYS_PER_LIST,
  MAX_DEVICE_ID,
  MAX_REGISTRATION_ID,
  SIGNATURE_BYTES,
} from './limits.js';
import { array, base64Bytes, integer, invalid, object, ok, type Validator } from './validate.js';

/** Base64 of a 33-byte curve public key (0x05 || u). */
export type CurvePublicKeyB64 = string;
/** Base64 of a 1569-byte Kyber1024 public key (0x08 || key). */
export type KyberPublicKeyB64 = string;
/** Base64 of a 64-byte XEdDSA signature. */
export type SignatureB64 = string;

/** A one-time EC pre-key. */
export interface PreKey {
  keyId: number;
  publicKey: CurvePublicKeyB64;
}

/** The signed (medium-term) EC pre-key. */
export interface SignedPreKey {
  keyId: number;
  publicKey: CurvePublicKeyB64;
  signature: SignatureB64;
}

/** A Kyber pre-key: one-time, or the last-resort key (served when one-time ones run out). */
export interface KyberPreKey {
  keyId: number;
  publicKey: KyberPublicKeyB64;
  signature: SignatureB64;
}

export const keyId = integer(0, MAX_KEY_ID);
export const deviceId = integer(1, MAX_DEVICE_ID);
export const registrationId = integer(1, MAX_REGISTRATION_ID);
export const curvePublicKey = base64Bytes({ length: CURVE_PUBLIC_KEY_BYTES, firstByte: CURVE_KEY_TYPE });
export const kyberPublicKey = base64Bytes({ length: KYBER_PUBLIC_KEY_BYTES, firstByte: KYBER_KEY_TYPE });
export const signature = base64Bytes({ length: SIGNATURE_BYTES });

export const validatePreKey: Validator<PreKey> = object({ keyId, publicKey: curvePublicKey });
export const validateSignedPreKey: Validator<SignedPreKey> = object({ keyId, publicKey: curvePublicKey, signature });
export const validateKyberPreKey: Validator<KyberPreKey> = object({ keyId, publicKey: kyberPublicKey, signature });

/** A list of at most MAX_KEYS_PER_LIST keys with distinct key ids. */
export function keyList<T extends { keyId: number }>(item: Validator<T>): Validator<T[]> {
  const base = array(item, { max: MAX_KEYS_PER_LIST });
  return (v, path = '$') => {
    const r = base(v, path);
    if (!r.ok) return r;
    const seen = new Set<number>();
    for (let i = 0; i < r.value.length; i++) {
      const id = r.value[i]!.keyId;
      if (seen.has(id)) return invalid(`${path}[${i}].keyId`, 'duplicate key id');
      seen.add(id);
    }
    return ok(r.value);
  };
}

/**
 * PUT /v1/keys: upload or replace this device's pre-keys. Every field is optional, at least one
 * must be present. A signed pre-key or last-resort key replaces the current one. A one-time list
 * replaces ALL one-time keys of that kind the server holds for this device (Signal's semantics):
 * keep the private keys of replaced ones for a while, since bundles handed out just before may
 * still be used.
 */
export interface UploadKeysRequest {
  signedPreKey?: SignedPreKey;
  kyberLastResortKey?: KyberPreKey;
  preKeys?: PreKey[];
  kyberPreKeys?: KyberPreKey[];
}

const uploadKeysShape = object(
  {
    signedPreKey: validateSignedPreKey,
    kyberLastResortKey: validateKyberPreKey,
    preKeys: keyList(validatePreKey),
    kyberPreKeys: keyList(validateKyberPreKey),
  },
  ['signedPreKey', 'kyberLastResortKey', 'preKeys', 'kyberPreKeys'],
);
export const validateUploadKeysRequest: Validator<UploadKeysRequest> = (v, path = '$') => {
  const r = uploadKeysShape(v, path);
  if (r.ok && Object.keys(r.value).length === 0) return invalid(path, 'nothing to upload');
  return r;
};

/**
 * POST /v1/keys/one-time: adds one-time keys to those the server holds for this device, so that
 * a large upload (100 Kyber pre-keys are about 220 KB of JSON) can go in several smaller
 * requests. A key whose id the device already holds replaces it (a retried request changes
 * nothing). At least one non-empty list; refused with TOO_MANY_KEYS past MAX_ONE_TIME_KEYS_HELD.
 */
export interface AddKeysRequest {
  preKeys?: PreKey[];
  kyberPreKeys?: KyberPreKey[];
}

const addKeysShape = object({ preKeys: keyList(validatePreKey), kyberPreKeys: keyList(validateKyberPreKey) }, ['preKeys', 'kyberPreKeys']);
export const validateAddKeysRequest: Validator<AddKeysRequest> = (v, path = '$') => {
  const r = addKeysShape(v, path);
  if (r.ok && (r.value.preKeys?.length ?? 0) + (r.value.kyberPreKeys?.length ?? 0) === 0) return invalid(path, 'nothing to add');
  return r;
};

/** GET /v1/keys/count: remaining one-time keys of the authenticated device. */
export interface KeyCountResponse {
  preKeys: number;
  kyberPreKeys: number;
}

/** One device's bundle: everything needed to start a PQXDH session with it. */
export interface DeviceBundle {
  deviceId: number;
  registrationId: number;
  signedPreKey: SignedPreKey;
  /** A one-time Kyber pre-key if the server had one, else the last-resort key (`kyberPreKeyIsLastResort`). */
  kyberPreKey: KyberPreKey;
  kyberPreKeyIsLastResort: boolean;
  /** A one-time EC pre-key, absent when the device has none left. */
  preKey?: PreKey;
}

/**
 * GET /v1/keys/:username (all devices) or /v1/keys/:username/:deviceId (one device).
 * Each one-time key in it has been removed from the server and is never handed out again.
 */
export interface BundleResponse {
  username: string;
  /** The account's identity key, shared by all its devices. */
  identityKey: CurvePublicKeyB64;
  devices: DeviceBundle[];
}

/** GET /v1/devices/:username: the user's current devices, without touching any key. */
export interface DeviceListResponse {
  username: string;
  identityKey: CurvePublicKeyB64;
  devices: { deviceId: number; registrationId: number }[];
}
