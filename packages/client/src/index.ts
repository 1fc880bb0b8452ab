// @tacit/client: the isomorphic client SDK. Nothing here imports node:*; Node-only pieces (the
// sealed state file, the `ws` socket, the home lock) live in `@tacit/client/node`.
export { TacitClient, parseUsername, DEVICE_LIST_TTL_MS, KEY_CHECK_AFTER_NEW_SESSIONS, KEY_CHECK_INTERVAL_MS } from './client.js';
export type { ClientEvents, ClientOptions, ContactInfo, RegisterOptions, SafetyNumberInfo, SendResult } from './client.js';
export { ClientError, CLIENT_ERROR_CODES, describeError, isClientError } from './errors.js';
export type { ClientErrorCode, ClientErrorDetails } from './errors.js';
export { MemoryVault, type StateVault } from './vault.js';
export { MemoryRecordStore, MAX_RECORD_BYTES, MAX_RECORD_KEY_LENGTH, MAX_COMMIT_RECORDS, type RecordStore, type StoredRecord, type ListOptions } from './record-store.js';
export { Relay, MAX_IN_FLIGHT_SENDS, PING_INTERVAL_MS, PONG_TIMEOUT_MS, MAX_QUEUED_SENDS, MAX_SEND_RETRIES, RECONNECT_ELSEWHERE_SPREAD_MS } from './relay.js';
export type { Socket, SocketFactory, SocketHandlers, RelayEvents, RelayOptions, RelayState, EnvelopeOutcome } from './relay.js';
export { backoffDelay, DEFAULT_BACKOFF, MAX_BACKOFF_EXPONENT, type BackoffPolicy } from './backoff.js';
export { decodeEnvelope, encodeEnvelope, ENVELOPE_VERSION, MAX_TEXT_LENGTH, PADDING_BLOCK, type Envelope } from './envelope.js';
export { HttpApi, normalizeServerUrl, relayUrl, HTTP_TIMEOUT_MS, type FetchLike } from './http.js';
export {
  ONE_TIME_KEY_BATCH,
  REFILL_THRESHOLD,
  SIGNED_PRE_KEY_ROTATION_MS,
  RETIRED_KEY_GRACE_MS,
  planKeyMaintenance,
} from './prekeys.js';
export { MAX_STORED_MESSAGES, MAX_OUTBOX, MAX_QUARANTINED, type StoredMessage } from './state.js';
export { KeyedLock } from './lock.js';
