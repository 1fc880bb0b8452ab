/**
 * This device's chat settings (one record, `set`): whether it sends read receipts and typing
 * indicators. As in Signal, turning read receipts off also hides other people's (their receipts
 * are not applied while it is off), and turning typing indicators off neither sends nor shows them.
 * Delivery receipts cannot be turned off.
 */
import type { Txn } from '../txn.js';
import { jsonCodec, isObj } from '../record-codec.js';
import { PREFIX } from '../keys.js';

export interface ChatSettings {
  readReceipts: boolean;
  typingIndicators: boolean;
}

export const DEFAULT_SETTINGS: ChatSettings = { readReceipts: true, typingIndicators: true };

export const settingsCodec = jsonCodec<ChatSettings>('settings', (v) => {
  if (!isObj(v)) return undefined;
  const { readReceipts, typingIndicators } = v;
  if (typeof readReceipts !== 'boolean' || typeof typingIndicators !== 'boolean') return undefined;
  return { readReceipts, typingIndicators };
});

export async function readSettings(t: Txn): Promise<ChatSettings> {
  return (await t.read(settingsCodec, PREFIX.settings)) ?? { ...DEFAULT_SETTINGS };
}
