/**
 * The team around the signed-in account, for the UI: whether it is an admin, the directory of
 * usernames (suggestions for "Start a conversation"), and the admin actions. Loaded when the page
 * connects; failures (offline, directory off) leave the suggestions empty rather than erroring.
 */
import { Team, type AccountReset, type TacitClient, type TeamInvite } from '@tacit/client';
import type { AccountSummary } from '@tacit/api';

/** The directory is fetched again at most this often (ms) when the user starts typing a name. */
const DIRECTORY_REFRESH_MS = 30_000;

export class TeamModel {
  admin = false;
  directoryOn = false;
  /** Registered usernames other than one's own, sorted. */
  directory: string[] = [];
  readonly #team: Team;
  readonly #me: string;
  readonly #changed: () => void;
  #loadedAt = 0;
  #loading: Promise<void> | undefined;

  constructor(client: TacitClient, changed: () => void) {
    this.#team = new Team(client);
    this.#me = client.username;
    this.#changed = changed;
  }

  /** Reads who we are and, if on, the directory. Throttled; never throws. */
  refresh(force = false): Promise<void> {
    if (this.#loading) return this.#loading;
    if (!force && Date.now() - this.#loadedAt < DIRECTORY_REFRESH_MS) return Promise.resolve();
    this.#loading = (async () => {
      try {
        const me = await this.#team.me();
        this.admin = me.admin;
        this.directoryOn = me.directory;
        if (me.directory) this.directory = (await this.#team.directory()).usernames.filter((u) => u !== this.#me);
        this.#loadedAt = Date.now();
        this.#changed();
      } catch {
        // Offline or refused: keep what we had; the next connection or focus tries again.
      } finally {
        this.#loading = undefined;
      }
    })();
    return this.#loading;
  }

  /** `count` invite links (1 to MAX_INVITES_PER_REQUEST), as `tacit admin invite <count>`. */
  createInvites(count: number): Promise<TeamInvite[]> {
    return this.#team.createInvites(count);
  }

  async accounts(): Promise<AccountSummary[]> {
    return (await this.#team.accounts()).accounts;
  }

  async resetAccount(username: string): Promise<AccountReset> {
    const r = await this.#team.resetAccount(username);
    void this.refresh(true);
    return r;
  }
}
