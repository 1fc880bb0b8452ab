/**
 * Typing indicators (docs/CLIENT.md, "Typing"): `{v: 1, typing: "started" | "stopped", group?}`,
 * padded like every plaintext, encrypted per device over the pairwise sessions and sent as an
 * ephemeral `send-multi` (docs/API.md): the server pushes it to devices connected now and drops it
 * for the others, so it is never queued for an offline device.
 *
 * Sending is rate limited: `started` at most once per TYPING_SEND_INTERVAL_MS per conversation
 * while typing goes on, `stopped` once when it ends. A received `started` shows for
 * TYPING_EXPIRE_MS unless renewed (a lost `stopped` does not leave it on). With typing indicators
 * off (settings.ts), none are sent and none are shown. Only a member's indicator counts in a group.
 */
import { ProtocolAddress, type SessionManager } from '@tacit/protocol';
import { toBase64 } from '@tacit/api';
import { toHex } from '../bytes.js';
import type { Core, StateTxn } from '../core.js';
import type { Directory } from '../directory.js';
import { directConversation, contactOf, groupIdOf, type ConversationId } from '../history.js';
import { isGroupId } from '../group/state.js';
import type { Relay } from '../relay.js';
import { padJson, startsWith, unpadJson } from './padding.js';
import { readSettings } from './settings.js';
import { readBlockList } from './block.js';

/** A `started` is sent again at most this often while typing continues, ms. */
export const TYPING_SEND_INTERVAL_MS = 3_000;
/** A received `started` shows this long unless renewed or stopped, ms (Signal: 15 s; ours renews every 3 s). */
export const TYPING_EXPIRE_MS = 6_000;
/** Largest typing plaintext accepted. */
export const MAX_TYPING_BYTES = 1_024;

export interface TypingPayload {
  typing: 'started' | 'stopped';
  group?: string;
}

const HEAD = '{"v":1,"typing":';

export function encodeTyping(p: TypingPayload): Uint8Array {
  return padJson({ v: 1, typing: p.typing, ...(p.group !== undefined ? { group: p.group } : {}) });
}

export function looksLikeTyping(bytes: Uint8Array): boolean {
  return startsWith(bytes, HEAD);
}

/** Total: the typing indicator in `bytes`, or undefined. */
export function decodeTyping(bytes: Uint8Array): TypingPayload | undefined {
  const o = unpadJson(bytes, MAX_TYPING_BYTES);
  if (o === undefined || o['v'] !== 1) return undefined;
  const { typing, group } = o;
  if (typing !== 'started' && typing !== 'stopped') return undefined;
  if (group !== undefined && !isGroupId(group)) return undefined;
  return { typing, ...(group !== undefined ? { group: group as string } : {}) };
}

export interface TypingEvent {
  conversation: ConversationId;
  from: string;
  typing: boolean;
}

export interface TypingOptions {
  core: Core;
  directory: Directory;
  sessions: SessionManager;
  relay: () => Relay | undefined;
  /** The current members of a group (without us), or undefined if we are not in it. */
  members: (group: string) => Promise<string[] | undefined>;
}

export class Typing {
  readonly #o: TypingOptions;
  readonly #core: Core;
  /** Conversations we told `started`, and when. */
  readonly #sent = new Map<ConversationId, number>();
  /** conversation → (user → expiry timer). */
  readonly #shown = new Map<ConversationId, Map<string, ReturnType<typeof setTimeout>>>();

  constructor(o: TypingOptions) {
    this.#o = o;
    this.#core = o.core;
  }

  /** Who is typing in a conversation now. */
  who(conversation: ConversationId): string[] {
    return [...(this.#shown.get(conversation)?.keys() ?? [])].sort();
  }

  /** We are typing (or stopped) in `conversation`. Returns how many live devices were told (0 when nothing was sent). */
  async set(conversation: ConversationId, typing: boolean): Promise<number> {
    if (!(await readSettings(this.#core.view())).typingIndicators) return 0;
    const now = this.#core.now();
    const last = this.#sent.get(conversation);
    if (typing) {
      if (last !== undefined && now - last < TYPING_SEND_INTERVAL_MS) return 0;
      this.#sent.set(conversation, now);
    } else {
      if (last === undefined) return 0;
      this.#sent.delete(conversation);
    }
    const relay = this.#o.relay();
    if (relay === undefined || relay.state !== 'ready') return 0;
    const group = groupIdOf(conversation);
    // Nothing goes to a blocked user (chat/block.ts), pairwise or in a group.
    const blocked = (await readBlockList(this.#core.view())).users;
    const users = (group !== undefined ? ((await this.#o.members(group)) ?? []) : [contactOf(conversation)!]).filter((u) => !blocked.includes(u));
    const plaintext = encodeTyping({ typing: typing ? 'started' : 'stopped', ...(group !== undefined ? { group } : {}) });
    const recipients: { username: string; devices: { deviceId: number; registrationId: number; message: { type: 'prekey' | 'whisper'; body: string } }[] }[] = [];
    for (const u of users) {
      // Only devices we already have sessions with, from what this device knows: a typing
      // indicator never fetches keys (a changed identity is found by the message, not mid-typing).
      const view = this.#core.view();
      const devices: number[] = [];
      for (const d of (await this.#o.directory.contact(view, u))?.devices ?? []) {
        if ((await this.#o.directory.sessionRegistrationId(view, u, d.deviceId)) !== undefined) devices.push(d.deviceId);
      }
      if (devices.length === 0) continue;
      await this.#core.peerLock.run(u, () =>
        this.#core.mutate(async (t) => {
          const r = { username: u, devices: [] as (typeof recipients)[number]['devices'] };
          for (const d of devices) {
            const ct = await this.#o.sessions.encrypt(new ProtocolAddress(u, d), plaintext);
            r.devices.push({ deviceId: d, registrationId: (await this.#o.directory.sessionRegistrationId(t, u, d)) ?? 1, message: { type: ct.type, body: toBase64(ct.body) } });
          }
          recipients.push(r);
        }),
      );
    }
    if (recipients.length === 0) return 0;
    const taken = await relay.sendEphemeral({ type: 'send-multi', id: toHex(this.#core.backend.randomBytes(12)), recipients, ephemeral: true });
    return taken ? recipients.reduce((n, r) => n + r.devices.length, 0) : 0;
  }

  /** Inside the inbox's state change: a typing indicator from `from`. */
  async receive(t: StateTxn, from: string, plaintext: Uint8Array): Promise<void> {
    const p = decodeTyping(plaintext);
    if (p === undefined || from === this.#core.account.username) return;
    if (!(await readSettings(t)).typingIndicators) return;
    const conversation = p.group !== undefined ? `g:${p.group}` : directConversation(from);
    if (p.group !== undefined && !((await this.#o.members(p.group)) ?? []).includes(from)) return;
    t.afterCommit(() => this.#show(conversation, from, p.typing === 'started'));
  }

  #show(conversation: ConversationId, from: string, typing: boolean): void {
    let m = this.#shown.get(conversation);
    const had = m?.has(from) ?? false;
    if (m !== undefined) clearTimeout(m.get(from));
    if (typing) {
      m ??= new Map();
      this.#shown.set(conversation, m);
      const timer = setTimeout(() => this.#show(conversation, from, false), TYPING_EXPIRE_MS);
      (timer as { unref?: () => void }).unref?.();
      m.set(from, timer);
    } else {
      m?.delete(from);
      if (m?.size === 0) this.#shown.delete(conversation);
    }
    if (had !== typing) this.#core.events.emit('typing', { conversation, from, typing });
  }

  /** A message from `from` ends their typing (as in Signal). */
  stopped(conversation: ConversationId, from: string): void {
    if (this.#shown.get(conversation)?.has(from)) this.#show(conversation, from, false);
  }

  close(): void {
    for (const m of this.#shown.values()) for (const t of m.values()) clearTimeout(t);
    this.#shown.clear();
  }
}
