/**
 * The team around an account: who am I on the server (and am I an admin), the directory of
 * registered usernames, and what admins do (invite, list accounts, reset one). Plain HTTP calls
 * with the device's credentials; nothing here touches sessions or local state.
 */
import { inviteLink, type AccountSummary, type DeviceCredentials, type MeResponse } from '@tacit/api';
import { parseUsername } from './client.js';
import { ClientError } from './errors.js';
import { HttpApi, type FetchLike } from './http.js';

export interface TeamInvite {
  code: string;
  expiresAt: number;
  /** `<server>/#invite=<code>`: opens the web client's register form filled in. */
  link: string;
}

export interface AccountReset {
  username: string;
  removed: { devices: number; preKeys: number; kyberPreKeys: number; messages: number };
  /** For the account's owner, to register the name again. */
  invite: TeamInvite;
}

export class Team {
  readonly #http: HttpApi;
  readonly #server: string;

  constructor(account: { server: string; credentials: DeviceCredentials }, options: { fetch?: FetchLike } = {}) {
    this.#http = new HttpApi(account.server, { credentials: account.credentials, ...(options.fetch ? { fetch: options.fetch } : {}) });
    this.#server = this.#http.baseUrl;
  }

  /** This device's account as the server sees it: admin or not, and whether the directory is on. */
  me(): Promise<MeResponse> {
    return this.#http.me();
  }

  /** Registered usernames, sorted (SERVER with serverCode FORBIDDEN when the directory is off). */
  async directory(): Promise<{ usernames: string[]; truncated: boolean }> {
    return this.#http.directory();
  }

  /** Admins only: `count` new single-use invites with their links. */
  async createInvites(count = 1): Promise<TeamInvite[]> {
    if (!Number.isSafeInteger(count) || count < 1) throw new ClientError('INVALID_ARGUMENT', 'the number of invites must be a positive whole number');
    const r = await this.#http.createInvites(count);
    return r.invites.map((i) => this.#invite(i));
  }

  /** Admins only: every account with its devices. */
  async accounts(): Promise<{ accounts: AccountSummary[]; truncated: boolean }> {
    return this.#http.accounts();
  }

  /**
   * Admins only: removes the account, its devices, keys and queued messages (as the operator's
   * reset-account does) and returns a fresh invite for its owner.
   */
  async resetAccount(username: string): Promise<AccountReset> {
    const r = await this.#http.resetAccount(parseUsername(username));
    return { username: r.username, removed: r.removed, invite: this.#invite(r.invite) };
  }

  #invite(i: { code: string; expiresAt: number }): TeamInvite {
    return { code: i.code, expiresAt: i.expiresAt, link: inviteLink(this.#server, i.code) };
  }
}
