/**
 * The HTTP half of the wire contract (key directory, accounts), over the global `fetch` (Node 20
 * and browsers). Every response is validated before use: a hostile or broken server yields
 * BAD_RESPONSE, never a TypeError deeper in the SDK.
 */
import {
  type AddKeysRequest,
  ROUTES,
  authorizationHeader,
  curvePublicKey,
  deviceId as deviceIdValidator,
  integer,
  array,
  object,
  string,
  username as usernameValidator,
  registrationId,
  validateKyberPreKey,
  validatePreKey,
  validateSignedPreKey,
  MAX_DEVICES_PER_ACCOUNT,
  type BundleResponse,
  type DeviceCredentials,
  type DeviceListResponse,
  type KeyCountResponse,
  type RegisterRequest,
  type RegisterResponse,
  type UploadKeysRequest,
  type Validator,
  type DeviceBundle,
  validateAccountsResponse,
  validateDirectoryResponse,
  validateInvitesResponse,
  validateMeResponse,
  validateResetAccountResponse,
  type AccountsResponse,
  type DirectoryResponse,
  type InvitesResponse,
  type MeResponse,
  type ResetAccountResponse,
  linkToken,
  validateDevicesResponse,
  type DevicesResponse,
  type LinkDeviceRequest,
  type LinkTokenResponse,
  type ProvisioningMessageRequest,
} from '@tacit/api';
import { ClientError } from './errors.js';
import { refusalText } from './refusals.js';

/** Deadline of one HTTP request, ms. Registration uploads ~300 KiB; generous for slow links. */
export const HTTP_TIMEOUT_MS = 30_000;
/** Largest response body we parse, bytes. A bundle of MAX_DEVICES_PER_ACCOUNT devices is ~25 KiB. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

const bundleDevice: Validator<DeviceBundle> = object(
  {
    deviceId: deviceIdValidator,
    registrationId,
    signedPreKey: validateSignedPreKey,
    kyberPreKey: validateKyberPreKey,
    kyberPreKeyIsLastResort: (v, p = '$') => (typeof v === 'boolean' ? { ok: true, value: v } : { ok: false, path: p, reason: 'expected a boolean' }),
    preKey: validatePreKey,
  },
  ['preKey'],
);
const bundleResponse: Validator<BundleResponse> = object({
  username: usernameValidator,
  identityKey: curvePublicKey,
  devices: array(bundleDevice, { max: MAX_DEVICES_PER_ACCOUNT }),
});
const deviceListResponse: Validator<DeviceListResponse> = object({
  username: usernameValidator,
  identityKey: curvePublicKey,
  devices: array(object({ deviceId: deviceIdValidator, registrationId }), { max: MAX_DEVICES_PER_ACCOUNT }),
});
const keyCountResponse: Validator<KeyCountResponse> = object({
  preKeys: integer(0, 1_000_000),
  kyberPreKeys: integer(0, 1_000_000),
});
const registerResponse: Validator<RegisterResponse> = object({ username: usernameValidator, deviceId: deviceIdValidator });
const errorBody = object({ error: object({ code: string({ min: 1, max: 64 }), message: string({ max: 1024 }) }) });

/** The validators every server response goes through (exported for the decoder fuzz suite). */
export const RESPONSE_VALIDATORS = {
  bundle: bundleResponse,
  deviceList: deviceListResponse,
  keyCount: keyCountResponse,
  register: registerResponse,
  error: errorBody,
} as const;

/**
 * The part of `fetch` the SDK uses. A real `fetch` response also has `headers` and a `body`
 * stream, which the SDK reads only up to MAX_RESPONSE_BYTES; a test double may offer `text()`
 * alone.
 */
export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<{
  status: number;
  text(): Promise<string>;
  headers?: { get(name: string): string | null };
  body?: ReadableStream<Uint8Array> | null;
}>;

export class TooLarge extends Error {}

/**
 * The response body as text, refusing (and cancelling the transfer) as soon as it passes
 * `max` bytes: a declared content-length over the limit is refused before reading, and a body
 * without one is read chunk by chunk, so a hostile server cannot make us buffer more than `max`.
 */
export async function readBounded(res: Awaited<ReturnType<FetchLike>>, max: number): Promise<string> {
  const declared = Number(res.headers?.get('content-length') ?? NaN);
  if (declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new TooLarge();
  }
  if (res.body === undefined || res.body === null) {
    const text = await res.text();
    if (text.length > max) throw new TooLarge();
    return text;
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new TooLarge();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

export class HttpApi {
  readonly baseUrl: string;
  #fetch: FetchLike;
  #credentials: DeviceCredentials | undefined;

  constructor(baseUrl: string, options: { fetch?: FetchLike; credentials?: DeviceCredentials } = {}) {
    this.baseUrl = normalizeServerUrl(baseUrl);
    this.#fetch = options.fetch ?? ((url, init) => fetch(url, init));
    this.#credentials = options.credentials;
  }

  setCredentials(c: DeviceCredentials): void {
    this.#credentials = c;
  }

  async register(req: RegisterRequest): Promise<RegisterResponse> {
    return this.#call('POST', ROUTES.accounts, registerResponse, req, false);
  }

  async uploadKeys(req: UploadKeysRequest): Promise<void> {
    await this.#call('PUT', ROUTES.keys, undefined, req, true);
  }

  /** Adds one-time keys to this device's stock on the server (POST /v1/keys/one-time). */
  async addKeys(req: AddKeysRequest): Promise<void> {
    await this.#call('POST', ROUTES.keysAdd, undefined, req, true);
  }

  async keyCount(): Promise<KeyCountResponse> {
    return this.#call('GET', ROUTES.keyCount, keyCountResponse, undefined, true);
  }

  async bundle(username: string, deviceId?: number): Promise<BundleResponse> {
    return this.#call('GET', ROUTES.bundle(username, deviceId), bundleResponse, undefined, true);
  }

  async deviceList(username: string): Promise<DeviceListResponse> {
    return this.#call('GET', ROUTES.deviceList(username), deviceListResponse, undefined, true);
  }

  // ---- linked devices (api linking.ts) ----

  async linkToken(): Promise<LinkTokenResponse> {
    return this.#call('POST', ROUTES.linkToken, linkTokenResponse, undefined, true);
  }

  async sendProvisioning(address: string, body: string): Promise<void> {
    const req: ProvisioningMessageRequest = { body };
    await this.#call('PUT', ROUTES.provisioningMessage(address), undefined, req, true);
  }

  /** Registers this (new) device under the account of the link token; no credentials needed. */
  async link(req: LinkDeviceRequest): Promise<RegisterResponse> {
    return this.#call('POST', ROUTES.link, registerResponse, req, false);
  }

  async devices(): Promise<DevicesResponse> {
    return this.#call('GET', ROUTES.devices, validateDevicesResponse, undefined, true);
  }

  async removeDevice(deviceId: number): Promise<void> {
    await this.#call('DELETE', ROUTES.device(deviceId), undefined, undefined, true);
  }

  async me(): Promise<MeResponse> {
    return this.#call('GET', ROUTES.me, validateMeResponse, undefined, true);
  }

  async directory(): Promise<DirectoryResponse> {
    return this.#call('GET', ROUTES.directory, validateDirectoryResponse, undefined, true);
  }

  async createInvites(count: number): Promise<InvitesResponse> {
    return this.#call('POST', ROUTES.adminInvites, validateInvitesResponse, { count }, true);
  }

  async accounts(): Promise<AccountsResponse> {
    return this.#call('GET', ROUTES.adminAccounts, validateAccountsResponse, undefined, true);
  }

  async resetAccount(username: string): Promise<ResetAccountResponse> {
    return this.#call('POST', ROUTES.adminReset(username), validateResetAccountResponse, undefined, true);
  }

  async #call<T>(method: string, path: string, validator: Validator<T> | undefined, body: unknown, auth: boolean): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (auth) {
      if (!this.#credentials) throw new ClientError('NOT_REGISTERED', 'no device credentials');
      headers['authorization'] = authorizationHeader(this.#credentials);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), HTTP_TIMEOUT_MS);
    let status: number;
    let text: string;
    try {
      const res = await this.#fetch(this.baseUrl + path, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: controller.signal,
      });
      status = res.status;
      text = await readBounded(res, MAX_RESPONSE_BYTES);
    } catch (e) {
      if (e instanceof TooLarge) {
        controller.abort();
        throw new ClientError('BAD_RESPONSE', 'the server response is too large');
      }
      if (controller.signal.aborted) throw new ClientError('TIMEOUT', `the server did not answer ${method} ${routeName(path)} in time`);
      throw new ClientError('NETWORK', `cannot reach the server at ${this.baseUrl}`);
    } finally {
      clearTimeout(timer);
    }
    if (status < 200 || status >= 300) {
      const parsed = safeParse(text);
      const e = errorBody(parsed);
      const code = e.ok ? e.value.error.code : 'UNKNOWN';
      throw new ClientError('SERVER', refusalText(code), { serverCode: code, status });
    }
    if (validator === undefined) return undefined as T;
    const r = validator(safeParse(text));
    if (!r.ok) throw new ClientError('BAD_RESPONSE', `malformed server response to ${method} ${routeName(path)} at ${r.path}`);
    return r.value;
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The route without user names in it, for messages. */
function routeName(path: string): string {
  return path.replace(/^(\/v1\/(keys|devices|admin\/accounts))\/(?!count$)[^/]+/, '$1/…');
}

/** Accepts http(s) URLs only; strips a trailing slash. */
export function normalizeServerUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ClientError('INVALID_ARGUMENT', 'the server URL is not a valid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ClientError('INVALID_ARGUMENT', 'the server URL must start with http:// or https://');
  if (u.username || u.password) throw new ClientError('INVALID_ARGUMENT', 'the server URL must not contain credentials');
  return u.origin + u.pathname.replace(/\/+$/, '');
}

const linkTokenResponse: Validator<LinkTokenResponse> = object({ token: linkToken, expiresAt: integer(0, Number.MAX_SAFE_INTEGER) });

/** ws(s):// URL of the provisioning channel for an http(s):// server URL. */
export function provisioningUrl(serverUrl: string): string {
  return serverUrl.replace(/^http/, 'ws') + ROUTES.provisioning;
}

/** ws(s):// URL of the relay for an http(s):// server URL. */
export function relayUrl(serverUrl: string): string {
  return serverUrl.replace(/^http/, 'ws') + ROUTES.ws;
}
