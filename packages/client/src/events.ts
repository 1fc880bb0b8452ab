/** What a TacitClient tells the app, after the change it describes has been committed. */
import type { ClientError } from './errors.js';
import type { ConversationId, HistoryMessage } from './history.js';
import type { GroupInfo } from './group/groups.js';
import type { ReceiptEvent } from './chat/receipts.js';
import type { ReadSyncEvent } from './chat/read-sync.js';
import type { AppliedAction, IgnoredReason } from './chat/edits.js';
import type { TypingEvent } from './chat/typing.js';
import type { BlockEvent } from './chat/block.js';
import type { MuteEvent } from './chat/mute.js';

export interface ClientEvents {
  /** A message arrived and is stored (shown once: redeliveries and resends are dropped). */
  message: HistoryMessage;
  /** An outgoing message changed state (queued, sent, failed). */
  outgoing: HistoryMessage;
  /** Anything in a conversation changed: a message, a state, the read cursor. */
  history: { conversation: ConversationId };
  /** Messages were dropped to stay within the local bounds (oldest read ones first). */
  'history-trimmed': { conversation: ConversationId; dropped: number; droppedUnread: number };
  'identity-changed': { contact: string };
  /** A group's state changed on this device because of a member's change (our own changes resolve their calls). */
  group: { group: GroupInfo };
  /** `detail`: the problem in words, for a message whose file pointer was refused (BAD_ATTACHMENT). */
  undecryptable: { from: string; fromDevice: number; reason: string; detail?: string };
  /**
   * A delivered message could not be processed because local state it needs is damaged
   * (STATE_CORRUPT, naming the record). It is not acknowledged: the server keeps it.
   */
  'state-corrupt': { from: string; message: string };
  /** A delivery or read receipt moved our outgoing messages (chat/receipts.ts). */
  receipt: ReceiptEvent;
  /** Another device of ours showed messages of a conversation: they are read here too (chat/read-sync.ts). */
  'read-sync': ReadSyncEvent;
  /** Disappearing messages whose time ran out were removed from the store (chat/edits.ts). */
  expired: { conversation: ConversationId; ids: string[] };
  /** An edit, deletion, reaction or timer change by a contact was applied (chat/edits.ts). */
  action: AppliedAction;
  /** One was not: not the author, too late, the message is deleted, or never arrived (after holding it). */
  'action-ignored': { conversation: ConversationId; from: string; kind: string; reason: IgnoredReason };
  /** Someone started or stopped typing in a conversation (chat/typing.ts; expires on its own). */
  typing: TypingEvent;
  /** The block list changed, here or on another device of ours (chat/block.ts). */
  block: BlockEvent;
  /** The muted conversations changed, here or on another device of ours (chat/mute.ts). */
  mute: MuteEvent;
  connection: { state: 'ready' | 'drained' | 'disconnected'; retryInMs?: number };
  fatal: ClientError;
}
