// @tacit/client/browser: the browser half of the SDK's storage. Records live in IndexedDB, each
// sealed with AES-256-GCM under a WebCrypto key (browser/keyring.ts). Nothing here imports node:*.
export { IndexedDbRecordStore, openTacitDatabase, deleteTacitDatabase, DB_NAME, DB_VERSION, KEY_STORE, RECORD_STORE } from './browser/indexeddb-store.js';
export { deviceSealingKey, isSealingKey, SEALING_KEY_RECORD } from './browser/keyring.js';
export { readLegacyRecord, writeLegacyRecord, deleteLegacyRecords, LEGACY_STATE_RECORD, LEGACY_JOURNAL_RECORD } from './browser/legacy-records.js';
export {
  readSealing,
  unlockSealingKey,
  setPassphraseLock,
  changePassphrase,
  removePassphraseLock,
  passphraseProblem,
  isPassphraseLock,
  PASSPHRASE_ITERATIONS,
  MIN_PASSPHRASE_LENGTH,
  MAX_PASSPHRASE_LENGTH,
  type PassphraseLock,
  type Sealing,
} from './browser/passphrase-lock.js';
