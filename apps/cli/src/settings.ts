/**
 * `tacit settings`: this device's chat settings. `tacit settings` shows them;
 * `tacit settings read-receipts on|off` and `tacit settings typing on|off` change one.
 * Read receipts off: none are sent and others' are not shown (as in Signal); typing off: typing
 * indicators are neither sent nor shown. Delivery receipts are always sent.
 */
import type { ChatSettings } from '@tacit/client';
import { UsageError } from './args.js';
import type { Ctx } from './context.js';
import { EXIT } from './exit-codes.js';

const NAMES: Record<string, keyof ChatSettings> = { 'read-receipts': 'readReceipts', typing: 'typingIndicators' };
const USAGE = 'usage: tacit settings [read-receipts|typing on|off]';

export async function cmdSettings(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (p.length !== 0 && p.length !== 2) throw new UsageError(USAGE);
  let change: Partial<ChatSettings> | undefined;
  if (p.length === 2) {
    const key = Object.prototype.hasOwnProperty.call(NAMES, p[0]!) ? NAMES[p[0]!] : undefined;
    if (key === undefined || (p[1] !== 'on' && p[1] !== 'off')) throw new UsageError(USAGE);
    change = { [key]: p[1] === 'on' };
  }
  const h = await ctx.open();
  try {
    const s = change !== undefined ? await h.client.updateSettings(change) : await h.client.settings();
    const onOff = (b: boolean): string => (b ? 'on' : 'off');
    ctx.out.event('settings', { ...s }, `read-receipts  ${onOff(s.readReceipts)}\ntyping         ${onOff(s.typingIndicators)}`);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}
