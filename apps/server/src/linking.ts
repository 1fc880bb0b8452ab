/**
 * Linking devices (packages/api/src/linking.ts has the whole flow): link tokens, the relay of a
 * provisioning message to a channel, registration of a linked device with a token, and the
 * owner's device list. Removing a device is `DELETE /v1/devices/:id` (http.ts).
 *
 * Link tokens live in the ticket store under their own hash domain (a WebSocket ticket is never a
 * link token and the other way round), bound like tickets to the credentials of the device that
 * asked for one: a device removed or reset since cannot have added anyone.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import {
  MAX_DEVICE_ID,
  ROUTES,
  provisioningAddress,
  validateLinkDeviceRequest,
  validateProvisioningMessageRequest,
  type DevicesResponse,
  type LinkTokenResponse,
  type RegisterResponse,
} from '@tacit/api';
import { authenticateDevice, authenticateHeader, ticketCredential } from './auth.js';
import { bytes } from './bytes.js';
import type { Context } from './context.js';
import { ServerError } from './errors.js';
import { newDevice, oneTimeKey, parse, signedKey, verifyKeys } from './http.js';
import { newToken } from './secrets.js';
import { addressKey, type DeviceKeys } from './store.js';

/** Bytes of entropy in a link token (43 base64url characters): unguessable within its lifetime. */
export const LINK_TOKEN_BYTES = 32;

/** The lookup hash of a link token: its own domain, apart from WebSocket tickets. */
export function linkTokenHash(token: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update('tacit link token\0').update(token, 'utf8').digest());
}

/** Whether an HTTP upgrade is for the provisioning channel (server.ts routes it there). */
export function isProvisioningUpgrade(req: { url?: string | undefined }): boolean {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return (q < 0 ? url : url.slice(0, q)) === ROUTES.provisioning;
}


export function registerLinkRoutes(app: FastifyInstance, ctx: Context): void {
  const l = ctx.limits;
  const tokenLimiter = ctx.limiters.bucket('link-token', { burst: l.ticketMintBurst, perSecond: l.ticketMintPerMinute / 60 });

  app.get(ROUTES.devices, async (req) => {
    const me = await authenticateHeader(ctx, req);
    const devices = await ctx.store.listDevices(me.username);
    if (devices === undefined) throw new ServerError('UNAUTHORIZED', 'wrong credentials');
    const res: DevicesResponse = { devices };
    return res;
  });

  app.post(ROUTES.linkToken, async (req) => {
    const me = await authenticateDevice(ctx, req);
    if (!(await tokenLimiter.take(addressKey(me.device), ctx.now()))) throw new ServerError('RATE_LIMITED', 'too many link tokens for this device');
    const token = newToken(LINK_TOKEN_BYTES);
    const expiresAt = ctx.now() + l.linkTokenTtlMs;
    await ctx.store.putTicket(linkTokenHash(token), { device: me.device, credential: ticketCredential(me.secretHash) }, expiresAt);
    const res: LinkTokenResponse = { token, expiresAt };
    return res;
  });

  app.put('/v1/provisioning/:address', async (req, reply) => {
    const me = await authenticateHeader(ctx, req);
    const address = parse(provisioningAddress, (req.params as Record<string, unknown>)['address']);
    const body = parse(validateProvisioningMessageRequest, req.body);
    if (!(await tokenLimiter.take(addressKey(me), ctx.now()))) throw new ServerError('RATE_LIMITED', 'too many provisioning messages from this device');
    if (!ctx.provisioning.deliver(address, body.body)) throw new ServerError('NOT_FOUND', 'no device is waiting on that link code (it expired or was used); show a new code');
    return reply.code(204).send();
  });

  app.post(ROUTES.link, async (req, reply) => {
    const body = parse(validateLinkDeviceRequest, req.body);
    if (!(await ctx.registrationLimiter.take(req.ip, ctx.now()))) throw new ServerError('RATE_LIMITED', 'too many registrations from this address');
    const identityKey = bytes(body.identityKey);
    const keys: DeviceKeys = {
      signedPreKey: signedKey(body.signedPreKey),
      kyberLastResortKey: signedKey(body.kyberLastResortKey),
      preKeys: body.preKeys.map(oneTimeKey),
      kyberPreKeys: body.kyberPreKeys.map(signedKey),
    };
    // Before the token is spent: keys that do not verify under the key the device was given are
    // the device's own mistake, and the token stays usable.
    verifyKeys(ctx, identityKey, keys);
    const t = await ctx.store.takeTicket(linkTokenHash(body.token), ctx.now());
    const invalid = () => new ServerError('LINK_TOKEN_INVALID', 'the link token is unknown, expired or already used; ask the other device for a new link code');
    if (t === undefined) throw invalid();
    // The device that asked for the token must still have the credentials it asked with.
    const auth = await ctx.store.getDeviceAuth(t.device);
    const cred = auth === undefined ? undefined : ticketCredential(auth.secretHash);
    if (cred === undefined || cred.length !== t.credential.length || !timingSafeEqual(cred, t.credential)) throw invalid();
    const account = await ctx.store.getAccount(t.device.username);
    if (account === undefined) throw invalid();
    if (account.identityKey.length !== identityKey.length || !timingSafeEqual(account.identityKey, identityKey)) {
      throw new ServerError('BAD_SIGNATURE', "$.identityKey: not the account's identity key");
    }
    const r = await ctx.store.addDevice(account.username, newDevice(body.registrationId, body.secret, keys, { name: body.name, createdAt: ctx.now() }), l.maxDevicesPerAccount, MAX_DEVICE_ID);
    if (r === 'NOT_FOUND') throw invalid();
    if (r === 'TOO_MANY_DEVICES') throw new ServerError('TOO_MANY_DEVICES', `an account has at most ${l.maxDevicesPerAccount} devices; remove one first`);
    const res: RegisterResponse = { username: account.username, deviceId: r };
    return reply.code(201).send(res);
  });
}
