/**
 * Routes for the signed-in account, the team directory and admins (see @tacit/api admin.ts):
 * who am I, list usernames, create invites, list accounts with their devices, reset an account.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  MAX_LISTED_ACCOUNTS,
  ROUTES,
  username as usernameValidator,
  validateCreateInvitesRequest,
  type AccountsResponse,
  type DirectoryResponse,
  type InvitesResponse,
  type MeResponse,
  type ResetAccountResponse,
} from '@tacit/api';
import { authenticateHeader } from './auth.js';
import type { Context } from './context.js';
import { ServerError } from './errors.js';
import { parse } from './http.js';
import { issueInvite, resetAccount } from './invites.js';
import type { Address } from './store.js';

export function registerAdminRoutes(app: FastifyInstance, ctx: Context): void {
  const account = async (req: FastifyRequest): Promise<{ me: Address; admin: boolean }> => {
    const me = await authenticateHeader(ctx, req);
    const a = await ctx.store.getAccount(me.username);
    // Removed between the credential check and here.
    if (a === undefined) throw new ServerError('UNAUTHORIZED', 'wrong credentials');
    return { me, admin: a.admin };
  };
  const admin = async (req: FastifyRequest): Promise<Address> => {
    const a = await account(req);
    if (!a.admin) throw new ServerError('FORBIDDEN', 'only admins may do this');
    return a.me;
  };

  app.get(ROUTES.me, async (req) => {
    const { me, admin: isAdmin } = await account(req);
    const res: MeResponse = { username: me.username, deviceId: me.deviceId, admin: isAdmin, directory: ctx.directory };
    return res;
  });

  app.get(ROUTES.directory, async (req) => {
    await authenticateHeader(ctx, req);
    if (!ctx.directory) throw new ServerError('FORBIDDEN', 'the directory is turned off on this server');
    const list = await ctx.store.listAccounts(MAX_LISTED_ACCOUNTS);
    const res: DirectoryResponse = { usernames: list.accounts.map((a) => a.username), truncated: list.truncated };
    return res;
  });

  app.post(ROUTES.adminInvites, async (req, reply) => {
    await admin(req);
    const body = parse(validateCreateInvitesRequest, req.body ?? {});
    const res: InvitesResponse = { invites: [] };
    for (let i = 0; i < (body.count ?? 1); i++) res.invites.push(await issueInvite(ctx.store, ctx.now(), ctx.limits.inviteTtlMs));
    return reply.code(201).send(res);
  });

  app.get(ROUTES.adminAccounts, async (req) => {
    await admin(req);
    const res: AccountsResponse = await ctx.store.listAccounts(MAX_LISTED_ACCOUNTS);
    return res;
  });

  app.post('/v1/admin/accounts/:username/reset', async (req) => {
    const me = await admin(req);
    const username = parse(usernameValidator, (req.params as Record<string, unknown>)['username']);
    // An admin resetting their own account would lose it from under the page doing it.
    if (username === me.username) throw new ServerError('FORBIDDEN', 'an admin cannot reset their own account');
    const devices = (await ctx.store.getAccount(username))?.devices ?? [];
    const r = await resetAccount(ctx.store, username, ctx.now(), ctx.limits.inviteTtlMs);
    if (r === undefined) throw new ServerError('NOT_FOUND', 'no such user');
    // Open sockets on this node go at once; the heartbeat catches any elsewhere.
    for (const d of devices) ctx.relay.disconnect({ username, deviceId: d.deviceId }, 'UNAUTHORIZED', 'account reset');
    ctx.log.info({ removed: r.removed }, 'account reset by an admin');
    const res: ResetAccountResponse = { username, removed: r.removed, invite: r.invite };
    return res;
  });
}
