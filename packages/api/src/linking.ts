/**
 * Linking a device to an existing account (DESIGN §3.1), the wire contract.
 *
 * 1. The new device opens the provisioning channel, a WebSocket on `GET /v1/provisioning`
 *    (unauthenticated). The server answers with one `ProvisioningAddressFrame`: the channel's
 *    random address and when it closes (PROVISIONING_CHANNEL_TTL_MS). The device shows a link
 *    code holding that address and an ephemeral X25519 public key.
 * 2. An existing device asks for a link token (`POST /v1/devices/link-token`, authenticated):
 *    single use, valid LINK_TOKEN_TTL_MS, bound to the account and to that device's credentials.
 * 3. It encrypts a provisioning message (identity key pair, username, token, contacts and group
 *    states) to the ephemeral key and sends it with `PUT /v1/provisioning/:address`
 *    (authenticated). The server relays the opaque body as one `ProvisioningMessageFrame` and
 *    closes the channel; it never sees the identity key. No channel at that address: NOT_FOUND.
 * 4. The new device registers itself with `POST /v1/devices/link` and the token. The server takes
 *    the token (once), checks that every pre-key signature verifies against the account's identity
 *    key, and gives the device the lowest free device id (MAX_DEVICES_PER_ACCOUNT at most).
 */
import { curvePublicKey, deviceId, keyList, registrationId, validateKyberPreKey, validatePreKey, validateSignedPreKey, type CurvePublicKeyB64, type KyberPreKey, type PreKey, type SignedPreKey } from './keys.js';
import { deviceSecret } from './accounts.js';
import { LINK_TOKEN_MAX_LENGTH, MAX_DEVICE_NAME_LENGTH, MAX_PROVISIONING_MESSAGE_BYTES, PROVISIONING_ADDRESS_MAX_LENGTH } from './limits.js';
import { array, base64Bytes, integer, invalid, isPlainObject, object, ok, string, type Validator } from './validate.js';

/** Link tokens and channel addresses are URL-safe random tokens. */
export const LINK_TOKEN_PATTERN = /^[A-Za-z0-9_-]+$/;

export const linkToken = string({ min: 1, max: LINK_TOKEN_MAX_LENGTH, pattern: LINK_TOKEN_PATTERN });
export const provisioningAddress = string({ min: 1, max: PROVISIONING_ADDRESS_MAX_LENGTH, pattern: LINK_TOKEN_PATTERN });

/**
 * A device name as the user typed it: 0..MAX_DEVICE_NAME_LENGTH characters, no control
 * characters (C0, DEL, C1) and no bidi overrides, so it can be shown as is.
 */
export const deviceName: Validator<string> = (v, path = '$') => {
  const r = string({ max: MAX_DEVICE_NAME_LENGTH })(v, path);
  if (!r.ok) return r;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(r.value)) return invalid(path, 'device name holds control or bidi-override characters');
  return ok(r.value);
};

/** POST /v1/devices/link-token (authenticated): a single-use token to register one more device. */
export interface LinkTokenResponse {
  token: string;
  /** Milliseconds since the Unix epoch. */
  expiresAt: number;
}

/** PUT /v1/provisioning/:address (authenticated): the encrypted provisioning message, relayed as is. */
export interface ProvisioningMessageRequest {
  /** Base64 of the provisioning envelope (0x01 || IV || ciphertext || MAC), at most MAX_PROVISIONING_MESSAGE_BYTES. */
  body: string;
}

export const validateProvisioningMessageRequest: Validator<ProvisioningMessageRequest> = object({
  body: base64Bytes({ min: 1, max: MAX_PROVISIONING_MESSAGE_BYTES }),
});

/** POST /v1/devices/link (unauthenticated; the token authorizes): register this device under the token's account. */
export interface LinkDeviceRequest {
  token: string;
  /** The account's identity key as the provisioning message gave it; refused (BAD_SIGNATURE) when it is not the account's. */
  identityKey: CurvePublicKeyB64;
  /** Shown in device lists (e.g. "laptop browser"); may be empty. */
  name: string;
  registrationId: number;
  signedPreKey: SignedPreKey;
  kyberLastResortKey: KyberPreKey;
  preKeys: PreKey[];
  kyberPreKeys: KyberPreKey[];
  /** Base64 of the new device's own secret; the server stores only a salted hash. */
  secret: string;
}

export const validateLinkDeviceRequest: Validator<LinkDeviceRequest> = object({
  token: linkToken,
  identityKey: curvePublicKey,
  name: deviceName,
  registrationId,
  signedPreKey: validateSignedPreKey,
  kyberLastResortKey: validateKyberPreKey,
  preKeys: keyList(validatePreKey),
  kyberPreKeys: keyList(validateKyberPreKey),
  secret: deviceSecret,
});

/** One device of the caller's own account, as `GET /v1/devices` lists it. */
export interface DeviceInfo {
  deviceId: number;
  registrationId: number;
  /** Empty when the device gave none (the first device of an account made before names). */
  name: string;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  /** Last WebSocket connection, ms since the epoch, rounded down to the day (Signal's privacy rule); 0 if never. */
  lastSeenAt: number;
}

/** GET /v1/devices (authenticated): the caller's own devices. */
export interface DevicesResponse {
  devices: DeviceInfo[];
}

export const validateDevicesResponse: Validator<DevicesResponse> = object({
  devices: array(
    object({ deviceId, registrationId, name: deviceName, createdAt: integer(0, Number.MAX_SAFE_INTEGER), lastSeenAt: integer(0, Number.MAX_SAFE_INTEGER) }),
    { max: 128 },
  ),
});

// ---- the provisioning channel's frames (server → new device only) ----

/** First frame on the channel: its address, and when the server closes it. */
export interface ProvisioningAddressFrame {
  type: 'address';
  address: string;
  expiresAt: number;
}

/** The one provisioning message an existing device sent; the server closes the channel after it. */
export interface ProvisioningMessageFrame {
  type: 'provision';
  /** Base64 of the provisioning envelope. */
  body: string;
}

export type ProvisioningFrame = ProvisioningAddressFrame | ProvisioningMessageFrame;

const addressFrame = object({ type: string({ max: 16 }), address: provisioningAddress, expiresAt: integer(0, Number.MAX_SAFE_INTEGER) });
const messageFrame = object({ type: string({ max: 16 }), body: base64Bytes({ min: 1, max: MAX_PROVISIONING_MESSAGE_BYTES }) });

/** Total: a provisioning frame, or why not. */
export const validateProvisioningFrame: Validator<ProvisioningFrame> = (v, path = '$') => {
  if (!isPlainObject(v)) return invalid(path, 'expected an object');
  if (v['type'] === 'address') {
    const r = addressFrame(v, path);
    return r.ok ? ok({ type: 'address', address: r.value.address, expiresAt: r.value.expiresAt }) : r;
  }
  if (v['type'] === 'provision') {
    const r = messageFrame(v, path);
    return r.ok ? ok({ type: 'provision', body: r.value.body }) : r;
  }
  return invalid(`${path}.type`, 'unknown provisioning frame');
};
