/**
 * This device's account record: where it is registered, who it is, and the secrets that prove
 * it (device secret, identity key pair). Written at registration; never changes afterwards
 * except for the `registered` flag.
 */
import { isInt, isObj, isStr, jsonCodec } from './record-codec.js';

export interface Account {
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

export const accountCodec = jsonCodec<Account>('account', (v) => {
  if (!isObj(v)) return undefined;
  const { server, username, deviceId, registrationId, secret, identityKeyPair, createdAt, registered } = v;
  if (!isStr(server, 2048) || !isStr(username, 64) || !isInt(deviceId, 1) || !isInt(registrationId) || !isStr(secret, 256)) return undefined;
  if (!isStr(identityKeyPair, 256) || !isInt(createdAt) || typeof registered !== 'boolean') return undefined;
  return { server, username, deviceId, registrationId, secret, identityKeyPair, createdAt, registered };
});
