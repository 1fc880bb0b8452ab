/**
 * Per-sender quotas on what the relay stores (issue 13.6): without them one device stored 8.5 MB/s,
 * so one account could fill a colleague's mailbox (every other sender then got MAILBOX_FULL) or
 * the disk. Three buckets, each holding one day's quota and refilled evenly over 24 hours, shared
 * by every node when the limiters are (Redis):
 *
 * - messages from one account to one recipient device (`sendsPerRecipientDevicePerDay`), well
 *   below the device's queue cap, so no single sender can fill a mailbox in a day;
 * - messages one account stores in all (`sendsPerAccountPerDay`);
 * - ciphertext bytes one account stores in all (`sendBytesPerAccountPerDay`), which bounds the disk.
 *
 * A send over any of them is refused with SEND_QUOTA_EXCEEDED and not stored. The per-second send
 * rate (writer.ts) is checked first; tokens a refused send took from another bucket are spent.
 */
import type { Limits } from '../config.js';
import type { Limiters, RateLimit } from '../rate.js';
import { addressKey } from '../store.js';
import type { PendingFanout } from './fanout.js';
import type { PendingSend } from './writer.js';

const DAY_SECONDS = 24 * 60 * 60;

type QuotaLimits = Pick<Limits, 'sendsPerRecipientDevicePerDay' | 'sendsPerAccountPerDay' | 'sendBytesPerAccountPerDay'>;

export class SendQuotas {
  readonly #perRecipient: RateLimit;
  readonly #perAccount: RateLimit;
  readonly #bytes: RateLimit;

  constructor(limiters: Limiters, l: QuotaLimits) {
    const daily = (n: number) => ({ burst: n, perSecond: n / DAY_SECONDS });
    this.#perRecipient = limiters.bucket('quota-recipient', daily(l.sendsPerRecipientDevicePerDay));
    this.#perAccount = limiters.bucket('quota-account', daily(l.sendsPerAccountPerDay));
    this.#bytes = limiters.bucket('quota-bytes', daily(l.sendBytesPerAccountPerDay));
  }

  /** Splits a batch's sends into those within their senders' quotas and those over one. */
  async admit(sends: PendingSend[], now: number): Promise<{ admitted: PendingSend[]; refused: PendingSend[] }> {
    if (sends.length === 0) return { admitted: sends, refused: [] };
    const recipient = new Map<string, number>();
    const account = new Map<string, number>();
    const bytes = new Map<string, number>();
    const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);
    for (const s of sends) {
      add(recipient, pairKey(s.message.from.username, addressKey(s.message.to)), 1);
      add(account, s.message.from.username, 1);
      add(bytes, s.message.from.username, s.message.body.byteLength);
    }
    const [r, a, b] = await Promise.all([take(this.#perRecipient, recipient, now), take(this.#perAccount, account, now), take(this.#bytes, bytes, now)]);
    const admitted: PendingSend[] = [];
    const refused: PendingSend[] = [];
    for (const s of sends) {
      const rk = pairKey(s.message.from.username, addressKey(s.message.to));
      const ak = s.message.from.username;
      const size = s.message.body.byteLength;
      if (r.get(rk)! >= 1 && a.get(ak)! >= 1 && b.get(ak)! >= size) {
        r.set(rk, r.get(rk)! - 1);
        a.set(ak, a.get(ak)! - 1);
        b.set(ak, b.get(ak)! - size);
        admitted.push(s);
      } else refused.push(s);
    }
    return { admitted, refused };
  }

  /** Whether a whole fan-out fits its sender's quotas (one message per device it names). */
  async admitFanout(f: PendingFanout, now: number): Promise<boolean> {
    const from = f.fanout.from.username;
    const recipient = new Map<string, number>();
    let devices = 0;
    let size = 0;
    for (const r of f.fanout.recipients) {
      for (const d of r.devices) {
        recipient.set(pairKey(from, addressKey({ username: r.username, deviceId: d.deviceId })), 1);
        devices++;
        size += d.body.byteLength;
      }
    }
    const [r, a, b] = await Promise.all([
      take(this.#perRecipient, recipient, now),
      take(this.#perAccount, new Map([[from, devices]]), now),
      take(this.#bytes, new Map([[from, size]]), now),
    ]);
    return [...r.values()].every((n) => n >= 1) && a.get(from)! >= devices && b.get(from)! >= size;
  }
}

/** Sender account → recipient device. */
const pairKey = (from: string, to: string): string => `${from}>${to}`;

/** Takes what each key wants from a bucket in one call; resolves to what each got. */
async function take(limit: RateLimit, wanted: Map<string, number>, now: number): Promise<Map<string, number>> {
  const keys = [...wanted.keys()];
  const got = await limit.takeMany(
    keys.map((key) => ({ key, n: wanted.get(key)! })),
    now,
  );
  return new Map(keys.map((k, i) => [k, got[i] ?? 0]));
}
