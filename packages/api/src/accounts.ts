/**
 * Accounts, devices and authentication.
 *
 * An address is (username, deviceId). Usernames are case-insensitive: the server folds them to
 * lower case (`normalizeUsername`) and returns only the folded form. A device authenticates with
 * the random secret it chose at registration, over HTTP as
 * `Authorization: Basic base64("<username>.<deviceId>:<base64 secret>")` and over WebSocket by its
 * first frame or a ticket (see frames.ts).
 */
import { toBase64, fromBase64 } from './base64.js';
import {
  DEVICE_SECRET_MAX_BYTES,
  DEVICE_SECRET_MIN_BYTES,
  INVITE_CODE_MAX_LENGTH,
  MAX_DEVICE_ID,
  USERNAME_MAX_LENGTH,
  USERNAME_MIN_LENGTH,
} from './limits.js';
import {
  curvePublicKey,
  deviceId,
  keyList,
  registrationId,
  validateKyberPreKey,
  validatePreKey,
  validateSignedPreKey,
  type CurvePublicKeyB64,
  type KyberPreKey,
  type PreKey,
  type SignedPreKey,
} from './keys.js';
import { base64Bytes, integer, invalid, object, ok, string, type Validator } from './validate.js';

/** A folded username: a lower-case letter, then lower-case letters, digits, `_` or `-`. */
export const USERNAME_PATTERN = /^[a-z][a-z0-9_-]*$/;

/**
 * Usernames registration refuses (USERNAME_TAKEN): they would collide with a fixed route segment
 * (`GET /v1/keys/count`).
 */
export const RESERVED_USERNAMES: readonly string[] = ['count'];

/** Case-folds a username (ASCII only; anything else fails USERNAME_PATTERN anyway). */
export function normalizeUsername(name: string): string {
  return name.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** Accepts any case; yields the folded form. */
const usernameString = string({ min: USERNAME_MIN_LENGTH, max: USERNAME_MAX_LENGTH });
export const username: Validator<string> = (v, path = '$') => {
  const r = usernameString(v, path);
  if (!r.ok) return r;
  // Already folded (the common case): no copy.
  const folded = USERNAME_PATTERN.test(r.value) ? r.value : normalizeUsername(r.value);
  if (!USERNAME_PATTERN.test(folded)) return invalid(path, 'username must be a letter then letters, digits, _ or -');
  return ok(folded);
};

/** Base64 of the device's secret: DEVICE_SECRET_MIN_BYTES..DEVICE_SECRET_MAX_BYTES random bytes. */
export const deviceSecret = base64Bytes({ min: DEVICE_SECRET_MIN_BYTES, max: DEVICE_SECRET_MAX_BYTES });

/** Invite codes are URL-safe tokens, e.g. `k3J9-x0Qe...`; compared exactly. */
export const INVITE_CODE_PATTERN = /^[A-Za-z0-9_-]+$/;
export const inviteCode = string({ min: 1, max: INVITE_CODE_MAX_LENGTH, pattern: INVITE_CODE_PATTERN });

/** POST /v1/accounts: create an account with its first device (deviceId 1), in one request. */
export interface RegisterRequest {
  username: string;
  /** Must be 1: the first device. Further devices use POST /v1/devices. */
  deviceId: number;
  registrationId: number;
  identityKey: CurvePublicKeyB64;
  signedPreKey: SignedPreKey;
  kyberLastResortKey: KyberPreKey;
  preKeys: PreKey[];
  kyberPreKeys: KyberPreKey[];
  /** Base64 of the device's secret (>= 32 random bytes). The server stores only a salted hash. */
  secret: string;
  /** Required unless the server runs with open registration. */
  inviteCode?: string;
}

export const validateRegisterRequest: Validator<RegisterRequest> = object(
  {
    username,
    deviceId: integer(1, 1),
    registrationId,
    identityKey: curvePublicKey,
    signedPreKey: validateSignedPreKey,
    kyberLastResortKey: validateKyberPreKey,
    preKeys: keyList(validatePreKey),
    kyberPreKeys: keyList(validateKyberPreKey),
    secret: deviceSecret,
    inviteCode,
  },
  ['inviteCode'],
);

/** 201 reply to POST /v1/accounts and POST /v1/devices. */
export interface RegisterResponse {
  /** The folded username. */
  username: string;
  deviceId: number;
}

/**
 * POST /v1/devices (authenticated as an existing device of the account): add a device. It shares
 * the account's identity key (the new device received the identity key pair from an existing one,
 * out of band); its pre-key signatures are verified against that key. The server picks the
 * device id (lowest free) and returns it.
 */
export interface AddDeviceRequest {
  registrationId: number;
  signedPreKey: SignedPreKey;
  kyberLastResortKey: KyberPreKey;
  preKeys: PreKey[];
  kyberPreKeys: KyberPreKey[];
  secret: string;
}

export const validateAddDeviceRequest: Validator<AddDeviceRequest> = object({
  registrationId,
  signedPreKey: validateSignedPreKey,
  kyberLastResortKey: validateKyberPreKey,
  preKeys: keyList(validatePreKey),
  kyberPreKeys: keyList(validateKyberPreKey),
  secret: deviceSecret,
});

/** POST /v1/ws-ticket (authenticated): a single-use ticket for `GET /v1/ws?ticket=...`. */
export interface TicketResponse {
  /** Opaque, URL-safe. Valid once, until `expiresAt`. */
  ticket: string;
  /** Milliseconds since the Unix epoch. */
  expiresAt: number;
}

/** The credentials of one device. */
export interface DeviceCredentials {
  username: string;
  deviceId: number;
  /** Base64 of the device secret. */
  secret: string;
}

/** Builds the HTTP Authorization header value for a device. */
export function authorizationHeader(c: DeviceCredentials): string {
  return 'Basic ' + toBase64(new TextEncoder().encode(`${normalizeUsername(c.username)}.${c.deviceId}:${c.secret}`));
}

/**
 * Parses an Authorization header into credentials, or undefined if it is not well formed.
 * Does not check them; that is the server's job.
 */
export function parseAuthorizationHeader(header: string | undefined): DeviceCredentials | undefined {
  if (header === undefined || header.length > 512) return undefined;
  const m = /^Basic ([A-Za-z0-9+/]+={0,2})$/.exec(header);
  if (!m) return undefined;
  const raw = fromBase64(m[1]!);
  if (!raw) return undefined;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return undefined;
  }
  const m2 = /^([^.:]+)\.(\d{1,3}):(.+)$/.exec(text);
  if (!m2) return undefined;
  const u = username(m2[1]);
  const d = Number(m2[2]);
  const s = deviceSecret(m2[3]);
  if (!u.ok || !s.ok || !Number.isInteger(d) || d < 1 || d > MAX_DEVICE_ID) return undefined;
  return { username: u.value, deviceId: d, secret: s.value };
}

export { deviceId };
