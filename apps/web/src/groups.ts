/**
 * The groups of the signed-in account, for the UI: titles and members (the SDK keeps the state
 * and the history; this keeps a snapshot so rendering stays synchronous), and the changes a
 * member or an admin can make. A group's conversation is keyed by its id, `g:<id>`, like a
 * contact's by username.
 */
import type { GroupInfo, TacitClient } from '@tacit/client';

export class GroupsModel {
  /** Groups this browser is or was in, by conversation id (`g:<id>`). */
  readonly byConversation = new Map<string, GroupInfo>();
  readonly #client: TacitClient;
  readonly #changed: () => void;
  #loading: Promise<void> | undefined;

  constructor(client: TacitClient, changed: () => void) {
    this.#client = client;
    this.#changed = changed;
  }

  /** Re-reads the groups (after a group event or a history change); never throws. */
  refresh(): Promise<void> {
    if (this.#loading) return this.#loading;
    this.#loading = (async () => {
      try {
        const list = await this.#client.groups();
        this.byConversation.clear();
        for (const g of list) this.byConversation.set(g.conversation, g);
        this.#changed();
      } catch {
        // The store is closing: keep what we had.
      } finally {
        this.#loading = undefined;
      }
    })();
    return this.#loading;
  }

  get(conversation: string): GroupInfo | undefined {
    return this.byConversation.get(conversation);
  }

  isAdmin(conversation: string): boolean {
    const g = this.get(conversation);
    return g !== undefined && g.member && g.admins.includes(this.#client.username);
  }

  /** Members typed as "bob, carol" or "bob carol". */
  static parseMembers(text: string): string[] {
    return text
      .split(/[\s,]+/)
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  async create(title: string, members: string[]): Promise<GroupInfo> {
    const g = await this.#client.createGroup(title, members);
    await this.refresh();
    return g;
  }

  async add(conversation: string, users: string[]): Promise<void> {
    await this.#client.addToGroup(conversation, users);
    await this.refresh();
  }

  async remove(conversation: string, user: string): Promise<void> {
    await this.#client.removeFromGroup(conversation, [user]);
    await this.refresh();
  }

  async rename(conversation: string, title: string): Promise<void> {
    await this.#client.renameGroup(conversation, title);
    await this.refresh();
  }

  /** Makes a member an admin (`admin` true) or takes admin rights away. */
  async setAdmin(conversation: string, user: string, admin: boolean): Promise<void> {
    await this.#client.setGroupAdmin(conversation, user, admin);
    await this.refresh();
  }

  async leave(conversation: string): Promise<void> {
    await this.#client.leaveGroup(conversation);
    await this.refresh();
  }
}
