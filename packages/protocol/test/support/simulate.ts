// A randomized conversation between two parties of any implementation: random senders (both
// may send before either receives), DH ratchet turns, out-of-order delivery within and across
// chains, and messages held back for several turns. Every message must decrypt exactly once to
// the bytes that were sent.
import assert from 'node:assert/strict';
import { type CiphertextMessage, decodePreKeySignalMessage, decodeSignalMessage, toHex } from '../../src/index.ts';
import { mulberry32 } from './random.ts';
import { type Party } from './tacit.ts';

/** Receiving chains a peer keeps (MAX_RECEIVER_CHAINS): held messages must arrive within this window. */
const CHAIN_WINDOW = 5;

interface InFlight {
  readonly msg: CiphertextMessage;
  readonly plaintext: Uint8Array;
  readonly ratchetKey: string;
  held: boolean;
}

function ratchetKeyOf(m: CiphertextMessage): string {
  const s = m.type === 'prekey' ? decodePreKeySignalMessage(m.body).message : decodeSignalMessage(m.body);
  return toHex(s.ratchetKey.serialize());
}

class Direction {
  readonly queue: InFlight[] = [];
  /** Distinct sender ratchet keys the receiver has processed, oldest first. */
  readonly seenKeys: string[] = [];
  delivered = 0;
  constructor(
    readonly from: Party,
    readonly to: Party,
  ) {}
}

export interface SimulationStats {
  sent: number;
  delivered: number;
  outOfOrder: number;
  held: number;
  chainsSeen: number;
}

export async function simulate(a: Party, b: Party, opts: { seed: number; messages: number; withOneTime: boolean }): Promise<SimulationStats> {
  const rnd = mulberry32(opts.seed);
  const ctx = `seed=${opts.seed}`;
  await a.processBundle(b.name, await b.bundle(opts.withOneTime));
  const ab = new Direction(a, b);
  const ba = new Direction(b, a);
  let bHasSession = false;
  let sent = 0;
  let outOfOrder = 0;
  let held = 0;
  let counter = 0;

  const send = async (d: Direction): Promise<void> => {
    const len = Math.floor(rnd() * 200);
    const plaintext = new Uint8Array(len + 4);
    for (let i = 0; i < plaintext.length; i++) plaintext[i] = Math.floor(rnd() * 256);
    new DataView(plaintext.buffer).setUint32(0, counter++);
    const msg = await d.from.encrypt(d.to.name, plaintext);
    const f: InFlight = { msg, plaintext, ratchetKey: ratchetKeyOf(msg), held: rnd() < 0.05 };
    if (f.held) held++;
    d.queue.push(f);
    sent++;
  };

  const deliverOne = async (d: Direction, f: InFlight): Promise<void> => {
    const i = d.queue.indexOf(f);
    if (i > 0) outOfOrder++;
    d.queue.splice(i, 1);
    if (!d.seenKeys.includes(f.ratchetKey)) d.seenKeys.push(f.ratchetKey);
    const out = await d.to.decrypt(d.from.name, f.msg);
    assert.deepEqual(out, f.plaintext, `${ctx}: plaintext mismatch`);
    d.delivered++;
    if (d === ab) bHasSession = true;
  };

  /** Deliver `f`, first releasing held messages whose chain would fall out of the window. */
  const deliver = async (d: Direction, f: InFlight): Promise<void> => {
    if (!d.seenKeys.includes(f.ratchetKey)) {
      const window = [...d.seenKeys, f.ratchetKey].slice(-CHAIN_WINDOW);
      for (const h of [...d.queue]) {
        if (h !== f && d.seenKeys.includes(h.ratchetKey) && !window.includes(h.ratchetKey)) await deliverOne(d, h);
      }
    }
    await deliverOne(d, f);
  };

  const pick = (d: Direction): InFlight | undefined => {
    const candidates = d.queue.filter((f) => !f.held || rnd() < 0.02);
    if (candidates.length === 0) return undefined;
    // Mostly in order; sometimes any message in flight (out of order, across chains).
    return rnd() < 0.7 ? candidates[0] : candidates[Math.floor(rnd() * candidates.length)];
  };

  while (sent < opts.messages) {
    const r = rnd();
    if (r < 0.3) await send(ab);
    else if (r < 0.55 && bHasSession) await send(ba);
    else if (r < 0.8) {
      const f = pick(ab);
      if (f !== undefined) await deliver(ab, f);
    } else {
      const f = pick(ba);
      if (f !== undefined) await deliver(ba, f);
    }
  }
  // Drain everything, held messages included.
  for (const d of [ab, ba]) {
    while (d.queue.length > 0) await deliver(d, d.queue[Math.floor(rnd() * d.queue.length)] as InFlight);
  }
  assert.equal(ab.delivered + ba.delivered, sent, `${ctx}: every message delivered`);
  return { sent, delivered: ab.delivered + ba.delivered, outOfOrder, held, chainsSeen: ab.seenKeys.length + ba.seenKeys.length };
}
