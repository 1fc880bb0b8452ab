/**
 * The signed-in account, the team directory and administration.
 *
 * An account may be an admin: the first account registered on a server is one, and the server's
 * operator names others (`admin <username>`, docs/OPERATIONS.md). Admins create invite codes, see
 * every account with its devices, and reset an account (what the operator's `reset-account`
 * does). The directory lists registered usernames to every signed-in device when the operator
 * enables it (the default for invite-only servers).
 */
import { MAX_DEVICES_PER_ACCOUNT, MAX_INVITES_PER_REQUEST, MAX_LISTED_ACCOUNTS } from './limits.js';
import { inviteCode, username } from './accounts.js';
import { deviceId, registrationId } from './keys.js';
import { array, integer, invalid, object, ok, type Validator } from './validate.js';

export const boolean: Validator<boolean> = (v, path = '$') => (typeof v === 'boolean' ? ok(v) : invalid(path, 'expected a boolean'));

/** Milliseconds since the Unix epoch. */
const time = integer(0, Number.MAX_SAFE_INTEGER);
const count = integer(0, Number.MAX_SAFE_INTEGER);

/** GET /v1/me: who this device is and what the server offers it. */
export interface MeResponse {
  username: string;
  deviceId: number;
  admin: boolean;
  /** Whether GET /v1/directory is enabled on this server. */
  directory: boolean;
}

export const validateMeResponse: Validator<MeResponse> = object({ username, deviceId, admin: boolean, directory: boolean });

/** GET /v1/directory: registered usernames, sorted; FORBIDDEN when the operator turned it off. */
export interface DirectoryResponse {
  usernames: string[];
  /** True when there were more than MAX_LISTED_ACCOUNTS and the list was cut. */
  truncated: boolean;
}

export const validateDirectoryResponse: Validator<DirectoryResponse> = object({
  usernames: array(username, { max: MAX_LISTED_ACCOUNTS }),
  truncated: boolean,
});

/** POST /v1/admin/invites (admin): create `count` single-use invite codes (default 1). */
export interface CreateInvitesRequest {
  count?: number;
}

export const validateCreateInvitesRequest: Validator<CreateInvitesRequest> = object({ count: integer(1, MAX_INVITES_PER_REQUEST) }, ['count']);

export interface Invite {
  code: string;
  /** When the unused code stops working. */
  expiresAt: number;
}

const invite: Validator<Invite> = object({ code: inviteCode, expiresAt: time });

/** 201 reply to POST /v1/admin/invites. A link `<server>/#invite=<code>` opens the register form filled in. */
export interface InvitesResponse {
  invites: Invite[];
}

export const validateInvitesResponse: Validator<InvitesResponse> = object({ invites: array(invite, { min: 1, max: MAX_INVITES_PER_REQUEST }) });

export interface AccountSummary {
  username: string;
  admin: boolean;
  createdAt: number;
  devices: { deviceId: number; registrationId: number }[];
}

const accountSummary: Validator<AccountSummary> = object({
  username,
  admin: boolean,
  createdAt: time,
  devices: array(object({ deviceId, registrationId }), { max: MAX_DEVICES_PER_ACCOUNT }),
});

/** GET /v1/admin/accounts (admin): every account, sorted by username. */
export interface AccountsResponse {
  accounts: AccountSummary[];
  /** True when there were more than MAX_LISTED_ACCOUNTS and the list was cut. */
  truncated: boolean;
}

export const validateAccountsResponse: Validator<AccountsResponse> = object({
  accounts: array(accountSummary, { max: MAX_LISTED_ACCOUNTS }),
  truncated: boolean,
});

/**
 * POST /v1/admin/accounts/:username/reset (admin, not one's own account): removes the account,
 * its devices, keys and queued messages, closes its connections, and returns a fresh invite so
 * its owner can register the name again (contacts then see a safety-number change).
 */
export interface ResetAccountResponse {
  username: string;
  removed: { devices: number; preKeys: number; kyberPreKeys: number; messages: number };
  invite: Invite;
}

export const validateResetAccountResponse: Validator<ResetAccountResponse> = object({
  username,
  removed: object({ devices: count, preKeys: count, kyberPreKeys: count, messages: count }),
  invite,
});

/**
 * A link that opens the web client's register form with the invite code filled in. The code
 * travels in the fragment, which browsers never send to a server (it stays out of access logs).
 */
export function inviteLink(serverUrl: string, code: string): string {
  return `${serverUrl.replace(/\/+$/, '')}/#invite=${code}`;
}

/** The invite code in a location fragment (`#invite=CODE`), if it holds a well-formed one. */
export function inviteCodeFromFragment(hash: string): string | undefined {
  const m = /^#invite=([^&]*)$/.exec(hash);
  if (!m) return undefined;
  const r = inviteCode(m[1]);
  return r.ok ? r.value : undefined;
}
