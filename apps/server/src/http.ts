/**
 * HTTP routes: accounts, devices, key directory, tickets. Every body goes through a validator
 * from @tacit/api before anything else reads it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  MAX_DEVICE_ID,
  MAX_ONE_TIME_KEYS_HELD,
  RESERVED_USERNAMES,
  ROUTES,
  validateAddDeviceRequest,
  validateAddKeysRequest,
  validateRegisterRequest,
  validateUploadKeysRequest,
  username as usernameValidator,
  deviceId as deviceIdValidator,
  type BundleResponse,
  type DeviceListResponse,
  type KeyCountResponse,
  type KyberPreKey,
  type PreKey,
  type RegisterResponse,
  type SignedPreKey,
  type TicketResponse,
  type Validator,
} from '@tacit/api';
import { authenticateDevice, authenticateHeader, ticketCredential } from './auth.js';
import { b64, bytes } from './bytes.js';
import { isUsableCurvePublicKey } from './points.js';
import { ServerError, errorBody } from './errors.js';
import type { Context } from './context.js';
import { hashSecret, newSalt, newToken, tokenHash, TICKET_BYTES } from './secrets.js';
import { addressKey, type Address, type DeviceKeys, type NewDevice, type OneTimePreKey, type SignedKey } from './store.js';

const RESERVED: ReadonlySet<string> = new Set(RESERVED_USERNAMES);

export function parse<T>(validator: Validator<T>, value: unknown): T {
  const r = validator(value);
  if (!r.ok) throw new ServerError('INVALID_REQUEST', `${r.path}: ${r.reason}`);
  return r.value;
}

export const signedKey = (k: SignedPreKey | KyberPreKey): SignedKey => ({ keyId: k.keyId, publicKey: bytes(k.publicKey), signature: bytes(k.signature) });
export const oneTimeKey = (k: PreKey): OneTimePreKey => ({ keyId: k.keyId, publicKey: bytes(k.publicKey) });
const signedKeyJson = (k: SignedKey) => ({ keyId: k.keyId, publicKey: b64(k.publicKey), signature: b64(k.signature) });

/**
 * Checks every curve key's point (INVALID_REQUEST) and every signature against the identity key
 * (BAD_SIGNATURE), naming the first bad key.
 */
export function verifyKeys(ctx: Context, identityKey: Uint8Array, keys: Partial<DeviceKeys>): void {
  const check = (k: SignedKey, where: string) => {
    if (!ctx.verifySignature(identityKey, k.publicKey, k.signature)) throw new ServerError('BAD_SIGNATURE', `${where}: signature does not verify`);
  };
  // Every curve key must be usable for DH; the one-time ones are unsigned, so this is their only check.
  const point = (k: { publicKey: Uint8Array }, where: string) => {
    if (!isUsableCurvePublicKey(k.publicKey)) throw new ServerError('INVALID_REQUEST', `${where}.publicKey: not a usable curve public key`);
  };
  if (keys.signedPreKey) point(keys.signedPreKey, '$.signedPreKey');
  keys.preKeys?.forEach((k, i) => point(k, `$.preKeys[${i}]`));
  if (keys.signedPreKey) check(keys.signedPreKey, '$.signedPreKey');
  if (keys.kyberLastResortKey) check(keys.kyberLastResortKey, '$.kyberLastResortKey');
  keys.kyberPreKeys?.forEach((k, i) => check(k, `$.kyberPreKeys[${i}]`));
}

export function newDevice(registrationId: number, secretB64: string, keys: DeviceKeys, info?: { name: string; createdAt: number }): NewDevice {
  const salt = newSalt();
  return { registrationId, secretSalt: salt, secretHash: hashSecret(salt, bytes(secretB64)), keys, ...info };
}

const authenticate = (ctx: Context, req: FastifyRequest): Promise<Address> => authenticateHeader(ctx, req);

function paramUsername(req: FastifyRequest): string {
  const p = req.params as Record<string, unknown>;
  return parse(usernameValidator, p['username']);
}

function paramDeviceId(req: FastifyRequest, name = 'deviceId'): number {
  const raw = (req.params as Record<string, unknown>)[name];
  const n = typeof raw === 'string' && /^[0-9]{1,3}$/.test(raw) ? Number(raw) : NaN;
  return parse(deviceIdValidator, n);
}

export function registerHttpRoutes(app: FastifyInstance, ctx: Context): void {
  const l = ctx.limits;
  const ticketLimiter = ctx.limiters.bucket('ticket', { burst: l.ticketMintBurst, perSecond: l.ticketMintPerMinute / 60 });
  // A draining node says so, so a load balancer's health check stops sending it anything.
  app.get(ROUTES.health, async (_req, reply) =>
    ctx.relay.draining ? reply.code(503).send(errorBody('UNAVAILABLE', 'this node is shutting down')) : { ok: true },
  );

  app.post(ROUTES.accounts, async (req, reply) => {
    const body = parse(validateRegisterRequest, req.body);
    if (!(await ctx.registrationLimiter.take(req.ip, ctx.now()))) throw new ServerError('RATE_LIMITED', 'too many registrations from this address');
    if (RESERVED.has(body.username)) throw new ServerError('USERNAME_TAKEN', 'username is reserved');
    let invite: { hash: Uint8Array; now: number } | null = null;
    if (ctx.registration === 'invite') {
      if (body.inviteCode === undefined) throw new ServerError('INVITE_INVALID', 'an invite code is required');
      invite = { hash: tokenHash(body.inviteCode), now: ctx.now() };
    }
    const identityKey = bytes(body.identityKey);
    const keys: DeviceKeys = {
      signedPreKey: signedKey(body.signedPreKey),
      kyberLastResortKey: signedKey(body.kyberLastResortKey),
      preKeys: body.preKeys.map(oneTimeKey),
      kyberPreKeys: body.kyberPreKeys.map(signedKey),
    };
    verifyKeys(ctx, identityKey, keys);
    const r = await ctx.store.createAccount(
      { username: body.username, identityKey, createdAt: ctx.now() },
      newDevice(body.registrationId, body.secret, keys, { name: '', createdAt: ctx.now() }),
      invite,
    );
    if (r === 'USERNAME_TAKEN') throw new ServerError('USERNAME_TAKEN', 'username is taken');
    if (r === 'INVITE_INVALID') throw new ServerError('INVITE_INVALID', 'invite code is unknown, used or expired');
    const res: RegisterResponse = { username: body.username, deviceId: 1 };
    return reply.code(201).send(res);
  });

  app.post(ROUTES.devices, async (req, reply) => {
    const me = await authenticate(ctx, req);
    const body = parse(validateAddDeviceRequest, req.body);
    if (!(await ctx.registrationLimiter.take(req.ip, ctx.now()))) throw new ServerError('RATE_LIMITED', 'too many registrations from this address');
    const account = await ctx.store.getAccount(me.username);
    if (account === undefined) throw new ServerError('UNAUTHORIZED', 'wrong credentials');
    const keys: DeviceKeys = {
      signedPreKey: signedKey(body.signedPreKey),
      kyberLastResortKey: signedKey(body.kyberLastResortKey),
      preKeys: body.preKeys.map(oneTimeKey),
      kyberPreKeys: body.kyberPreKeys.map(signedKey),
    };
    verifyKeys(ctx, account.identityKey, keys);
    const r = await ctx.store.addDevice(me.username, newDevice(body.registrationId, body.secret, keys, { name: '', createdAt: ctx.now() }), ctx.limits.maxDevicesPerAccount, MAX_DEVICE_ID);
    if (r === 'NOT_FOUND') throw new ServerError('UNAUTHORIZED', 'wrong credentials');
    if (r === 'TOO_MANY_DEVICES') throw new ServerError('TOO_MANY_DEVICES', `an account has at most ${ctx.limits.maxDevicesPerAccount} devices`);
    const res: RegisterResponse = { username: me.username, deviceId: r };
    return reply.code(201).send(res);
  });

  // DELETE /v1/devices/:deviceId and GET /v1/devices/:username share a path shape; the router
  // needs one parameter name, so both read `:target`.
  app.delete('/v1/devices/:target', async (req, reply) => {
    const me = await authenticate(ctx, req);
    const deviceId = paramDeviceId(req, 'target');
    const removed = await ctx.store.removeDevice({ username: me.username, deviceId });
    if (removed === 'NOT_FOUND') throw new ServerError('NOT_FOUND', 'no such device');
    if (removed === 'LAST_DEVICE') throw new ServerError('LAST_DEVICE', "the account's last device cannot be removed");
    ctx.relay.disconnect({ username: me.username, deviceId }, 'UNAUTHORIZED', 'device removed');
    return reply.code(204).send();
  });

  app.get('/v1/devices/:target', async (req) => {
    await authenticate(ctx, req);
    const username = parse(usernameValidator, (req.params as Record<string, unknown>)['target']);
    const account = await ctx.store.getAccount(username);
    if (account === undefined) throw new ServerError('NOT_FOUND', 'no such user');
    const res: DeviceListResponse = { username, identityKey: b64(account.identityKey), devices: account.devices };
    return res;
  });

  app.put(ROUTES.keys, async (req, reply) => {
    const me = await authenticate(ctx, req);
    const body = parse(validateUploadKeysRequest, req.body);
    const account = await ctx.store.getAccount(me.username);
    if (account === undefined) throw new ServerError('UNAUTHORIZED', 'wrong credentials');
    const keys: Partial<DeviceKeys> = {};
    if (body.signedPreKey) keys.signedPreKey = signedKey(body.signedPreKey);
    if (body.kyberLastResortKey) keys.kyberLastResortKey = signedKey(body.kyberLastResortKey);
    if (body.preKeys) keys.preKeys = body.preKeys.map(oneTimeKey);
    if (body.kyberPreKeys) keys.kyberPreKeys = body.kyberPreKeys.map(signedKey);
    verifyKeys(ctx, account.identityKey, keys);
    if (!(await ctx.store.replaceKeys(me, keys))) throw new ServerError('UNAUTHORIZED', 'wrong credentials');
    return reply.code(204).send();
  });

  app.post(ROUTES.keysAdd, async (req, reply) => {
    const me = await authenticate(ctx, req);
    const body = parse(validateAddKeysRequest, req.body);
    const account = await ctx.store.getAccount(me.username);
    if (account === undefined) throw new ServerError('UNAUTHORIZED', 'wrong credentials');
    const keys: Pick<Partial<DeviceKeys>, 'preKeys' | 'kyberPreKeys'> = {};
    if (body.preKeys) keys.preKeys = body.preKeys.map(oneTimeKey);
    if (body.kyberPreKeys) keys.kyberPreKeys = body.kyberPreKeys.map(signedKey);
    verifyKeys(ctx, account.identityKey, keys);
    const r = await ctx.store.addOneTimeKeys(me, keys, MAX_ONE_TIME_KEYS_HELD);
    if (r === 'unknown') throw new ServerError('UNAUTHORIZED', 'wrong credentials');
    if (r === 'full') throw new ServerError('TOO_MANY_KEYS', `at most ${MAX_ONE_TIME_KEYS_HELD} one-time keys of a kind per device`);
    return reply.code(204).send();
  });

  app.get(ROUTES.keyCount, async (req) => {
    const me = await authenticate(ctx, req);
    const res: KeyCountResponse = await ctx.store.keyCounts(me);
    return res;
  });

  const bundle = async (req: FastifyRequest, deviceId: number | undefined): Promise<BundleResponse> => {
    const me = await authenticate(ctx, req);
    const username = paramUsername(req);
    // Per requesting account, not device: an account's devices share one budget per target user.
    if (!(await ctx.bundleLimiter.take(`${me.username}>${username}`, ctx.now()))) {
      throw new ServerError('RATE_LIMITED', 'too many bundle fetches for this user');
    }
    const r = await ctx.store.takeBundles(username, deviceId);
    if (r === undefined || r.devices.length === 0) throw new ServerError('NOT_FOUND', deviceId === undefined ? 'no such user' : 'no such device');
    return {
      username,
      identityKey: b64(r.identityKey),
      devices: r.devices.map((d) => ({
        deviceId: d.deviceId,
        registrationId: d.registrationId,
        signedPreKey: signedKeyJson(d.signedPreKey),
        kyberPreKey: signedKeyJson(d.kyberPreKey),
        kyberPreKeyIsLastResort: d.kyberPreKeyIsLastResort,
        ...(d.preKey ? { preKey: { keyId: d.preKey.keyId, publicKey: b64(d.preKey.publicKey) } } : {}),
      })),
    };
  };
  app.get('/v1/keys/:username', async (req) => bundle(req, undefined));
  app.get('/v1/keys/:username/:deviceId', async (req) => bundle(req, paramDeviceId(req)));

  app.post(ROUTES.ticket, async (req) => {
    const me = await authenticateDevice(ctx, req);
    if (!(await ticketLimiter.take(addressKey(me.device), ctx.now()))) throw new ServerError('RATE_LIMITED', 'too many tickets for this device');
    const ticket = newToken(TICKET_BYTES);
    const expiresAt = ctx.now() + ctx.limits.ticketTtlMs;
    await ctx.store.putTicket(tokenHash(ticket), { device: me.device, credential: ticketCredential(me.secretHash) }, expiresAt);
    const res: TicketResponse = { ticket, expiresAt };
    return res;
  });
}
