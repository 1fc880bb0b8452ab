// @tacit/client: the isomorphic client SDK. Nothing here imports node:*; Node-only pieces (the
// SQLite record store, the `ws` socket, the home lock) live in `@tacit/client/node`, the
// IndexedDB record store in `@tacit/client/browser`.
export { TacitClient, parseUsername, parseConversation, isGroupRef, KEY_CHECK_AFTER_NEW_SESSIONS, KEY_CHECK_INTERVAL_MS, DEVICE_SECRET_BYTES } from './client.js';
export { LINK_REGISTER_WAIT_MS, LINK_POLL_MS, type LinkOptions, type LinkedDevice, type UnlinkResult } from './client.js';
export { encryptProvisioning, decryptProvisioning, formatLinkCode, parseLinkCode, generateProvisioningKeyPair, PROVISIONING_INFO, LINK_CODE_PREFIX, type ProvisioningKeyPair } from './provisioning.js';
export { decodeProvisioningMessage, encodeProvisioningMessage, MAX_SYNCED_CONTACTS, MAX_SYNCED_GROUPS, DEFAULT_LINK_TIMEOUT_MS, type ProvisioningMessage } from './link.js';
export type { ActionResult, ClientOptions, ContactInfo, ConversationInfo, RegisterOptions } from './client.js';
export { EDIT_WINDOW_MS, MIN_DISAPPEARING_MS, MAX_DISAPPEARING_MS, MAX_REACTION_LENGTH, isReactionEmoji, isTimerMs, decodeAction, encodeAction, parseDuration, describeDuration, type Action } from './chat/actions.js';
export { MAX_HELD_ACTIONS, MAX_HELD_ACTIONS_PER_SENDER, HELD_ACTION_TTL_MS, MIN_MESSAGE_PREFIX, type AppliedAction, type IgnoredReason } from './chat/edits.js';
export { MAX_SEARCH_RESULTS, MAX_SEARCH_QUERY, MAX_INDEXED_PREFIX, MAX_TERMS_PER_MESSAGE, MAX_CHUNK_POSTINGS, MAX_QUERY_LOOKUPS, SEARCH_SEQ_SPAN, SEARCH_BUILD_BATCH, searchWords, searchTerms } from './chat/search-index.js';
export { MAX_EDIT_VERSIONS, MAX_REACTIONS_PER_MESSAGE, type Reaction, type TextVersion } from './chat/meta.js';
export type { ClientEvents } from './events.js';
export { ClientError, CLIENT_ERROR_CODES, describeError, isClientError } from './errors.js';
export type { ClientErrorCode, ClientErrorDetails } from './errors.js';
export { MemoryRecordStore, MAX_RECORD_BYTES, MAX_RECORD_KEY_LENGTH, MAX_COMMIT_RECORDS, type RecordStore, type StoredRecord, type ListOptions } from './record-store.js';
export { Relay, MAX_IN_FLIGHT_SENDS, MAX_RECEIVE_BATCH, MAX_RECEIVE_BATCH_CHARS, PING_INTERVAL_MS, PONG_TIMEOUT_MS, MAX_QUEUED_SENDS, MAX_SEND_RETRIES, RECONNECT_ELSEWHERE_SPREAD_MS } from './relay.js';
export type { Socket, SocketFactory, SocketHandlers, RelayEvents, RelayOptions, RelayState, EnvelopeOutcome } from './relay.js';
export { backoffDelay, DEFAULT_BACKOFF, MAX_BACKOFF_EXPONENT, type BackoffPolicy } from './backoff.js';
export { decodeEnvelope, readEnvelope, encodeEnvelope, ENVELOPE_VERSION, MAX_ENVELOPE_BYTES, PADDING_BLOCK, type Envelope } from './envelope.js';
export { MAX_TEXT_LENGTH, checkText, countCharacters, describeTextProblem, neutralizeControls, type TextProblem } from './text.js';
export { HttpApi, normalizeServerUrl, relayUrl, HTTP_TIMEOUT_MS, type FetchLike } from './http.js';
export { MAX_GENERATED_KEY_ID, ONE_TIME_KEY_BATCH, REFILL_THRESHOLD, SIGNED_PRE_KEY_ROTATION_MS, RETIRED_KEY_GRACE_MS, planKeyMaintenance } from './prekeys.js';
export { MAX_KEY_RECORD_BYTES, checkEncodedInitialKeys, encodeInitialKeys, generateInitialKeys, makeInitialKeys, type EncodedInitialKeys, type EncodedKey, type InitialKeyGenerator, type InitialKeys } from './prekeys.js';
export { applyKeyMaintenance, checkEncodedKeys, initialKeyRequest, keyMaintenanceRequest, makeKeys, type EncodedKeys, type KeyGenerator, type KeyRequest } from './prekeys.js';
export { DEVICE_LIST_TTL_MS } from './directory.js';
export {
  MAX_STORED_MESSAGES,
  MAX_HISTORY_BYTES,
  MAX_CONVERSATIONS,
  MAX_PAGE,
  directConversation,
  contactOf,
  type ConversationId,
  type ConversationSummary,
  type HistoryMessage,
  type MessageError,
  type OutgoingState,
  type Delivery,
} from './history.js';
export { MAX_RECEIPT_IDS, MAX_QUEUED_RECEIPTS, RECEIPT_BATCH_DELAY_MS, RECEIPT_CLOSE_GRACE_MS, decodeReceipt, encodeReceipt, looksLikeReceipt, type ReceiptKind, type ReceiptPayload, type ReceiptEvent } from './chat/receipts.js';
export { MAX_READ_SYNC_ENTRIES, MAX_READ_SYNC_BYTES, MAX_HELD_READS, MAX_HELD_READS_PER_CONVERSATION, HELD_READ_TTL_MS, decodeReadSync, encodeReadSync, looksLikeReadSync, type ReadSyncEntry, type ReadSyncEvent } from './chat/read-sync.js';
export { DEFAULT_SETTINGS, type ChatSettings } from './chat/settings.js';
export { MAX_BLOCKED_USERS, MAX_BLOCK_SYNC_BYTES, decodeBlockSync, encodeBlockSync, looksLikeBlockSync, type BlockList, type BlockEvent } from './chat/block.js';
export { MAX_MUTED_CONVERSATIONS, MAX_MUTE_SYNC_BYTES, MUTED_FOREVER, MIN_MUTE_MS, MAX_MUTE_MS, MUTE_CHOICES, decodeMuteSync, encodeMuteSync, looksLikeMuteSync, type MuteList, type MuteEvent } from './chat/mute.js';
export { TYPING_SEND_INTERVAL_MS, TYPING_EXPIRE_MS, decodeTyping, encodeTyping, looksLikeTyping, type TypingEvent, type TypingPayload } from './chat/typing.js';
export { MAX_OUTBOX, MESSAGE_ID_BYTES, type SendResult } from './outbox.js';
export { MAX_SEEN_SERVER_IDS, MAX_SEEN_MESSAGE_IDS } from './inbox.js';
export { FAILURES_BEFORE_THROTTLE, MAX_PARKED, THROTTLED, THROTTLED_ATTEMPTS_PER_SECOND } from './throttle.js';
export { MAX_QUARANTINED, type SafetyNumberInfo } from './trust.js';
export { upgradeLegacyState, UNCONFIRMED_NOTE, type LegacyData } from './upgrade.js';
export { KeyedLock } from './lock.js';
export { buildSendMulti, parseSendMultiAnswer, sendMulti, type FanoutCiphertext, type FanoutTarget, type FrameSocket, type SendMultiAnswer } from './fanout.js';
export { Team, type AccountReset, type TeamInvite } from './team.js';
export { REFUSALS, refusalText } from './refusals.js';
export { AttachmentEncryption, AttachmentDecryption, chunkNonce, ATTACHMENT_KEY_BYTES, ATTACHMENT_DIGEST_BYTES } from './attachment/cipher.js';
export { webAttachmentCrypto, type AttachmentCrypto, type ChunkCipher, type IncrementalHash } from './attachment/crypto.js';
export { AttachmentApi, ATTACHMENT_REQUEST_TIMEOUT_MS, type BlobFetch } from './attachment/blob-api.js';
export {
  uploadAttachment,
  blobSource,
  isRetriableTransferError,
  MAX_UPLOAD_ATTEMPTS,
  MIN_UPLOAD_PIECE_BYTES,
  MAX_UPLOAD_PIECE_BYTES,
  UPLOAD_PIECES_PER_FILE,
  type PlaintextSource,
  type UploadHandle,
  type UploadOptions,
  type UploadedAttachment,
} from './attachment/upload.js';
export { downloadAttachment, downloadAttachmentBlob, DOWNLOAD_IDLE_TIMEOUT_MS, type BlobReference, type DownloadOptions } from './attachment/download.js';
export { safeFileName, numberedFileName, MAX_FILE_NAME_BYTES, FALLBACK_FILE_NAME } from './attachment/file-name.js';
export { MAX_GROUPS, MAX_GROUP_REPAIRS, MIN_GROUP_PREFIX, type GroupInfo, type GroupSendResult } from './group/groups.js';
export { MAX_GROUP_MEMBERS, MAX_GROUP_ENTRIES, MAX_GROUP_TITLE, mergeGroupState, parseGroupState, groupConversation, type GroupState } from './group/state.js';
export { decodeGroupPayload, encodeGroupPayload, type GroupPayload } from './group/wire.js';
export {
  decodeAttachmentPointer,
  encodeAttachmentPointer,
  normalizeContentType,
  contentTypeFromName,
  isContentType,
  isImageType,
  INLINE_IMAGE_TYPES,
  DEFAULT_CONTENT_TYPE,
  MAX_POINTER_FILE_BYTES,
  MAX_WIRE_NAME_BYTES,
  MAX_CONTENT_TYPE_LENGTH,
  MAX_THUMBNAIL_BYTES,
  MAX_IMAGE_DIMENSION,
  type AttachmentPointer,
  type AttachmentInfo,
} from './attachment/pointer.js';
export { MAX_RESUME_SCAN, type SendFileOptions, type TransferOptions } from './attachment/messages.js';
