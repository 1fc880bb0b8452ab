// The protocol workloads of bench:protocol, isomorphic (no node:*), so the same code times tacit's
// portable backend in a browser page and libsignal-client in Node (bench/browser.ts). Each decrypted
// message is compared with the bytes sent and each ciphertext's type checked, so a broken
// contender fails instead of looking fast.
import type { CiphertextMessage } from '@tacit/protocol';
import type { Party } from '../../packages/protocol/test/support/tacit.ts';

export const WORKLOADS = ['oneway', 'pingpong', 'setup'] as const;
export type Workload = (typeof WORKLOADS)[number];

export const MESSAGE_BYTES = 100;
/** Messages timed per batch in the stream workloads. */
const STREAM_BATCH = 16;
/** Setups prepared (untimed) and then timed per batch. */
const SETUP_BATCH = 2;

const filler = new Uint8Array(MESSAGE_BYTES);
for (let i = 0; i < MESSAGE_BYTES; i++) filler[i] = (i * 131 + 7) & 0xff;

/** A distinct 100-byte message: the sequence number in the first 4 bytes, fixed filler after. */
export function message(seq: number): Uint8Array {
  const m = filler.slice();
  new DataView(m.buffer).setUint32(0, seq);
  return m;
}

function check(got: Uint8Array, sent: Uint8Array, where: string): void {
  if (got.length !== sent.length || got.some((b, i) => b !== sent[i])) throw new Error(`${where}: decrypted bytes differ from the sent ones`);
}

function checkType(m: CiphertextMessage, type: CiphertextMessage['type'], where: string): void {
  if (m.type !== type) throw new Error(`${where}: expected a ${type} message, got ${m.type}`);
}

/** Times its own critical part; returns the operations done and the milliseconds they took. */
type Batch = () => Promise<[number, number]>;

async function pair(party: (name: string) => Party, tag: string) {
  const a = party(`alice-${tag}`);
  const b = party(`bob-${tag}`);
  await a.processBundle(b.name, await b.bundle(true));
  const seq = { n: 0 };
  for (const [from, to, type] of [
    [a, b, 'prekey'],
    [b, a, 'whisper'],
  ] as const) {
    const m = message(seq.n++);
    const e = await from.encrypt(to.name, m);
    checkType(e, type, `${tag} handshake`);
    check(await to.decrypt(from.name, e), m, `${tag} handshake`);
  }
  return { a, b, seq };
}

async function stream(party: (name: string) => Party, w: 'oneway' | 'pingpong'): Promise<Batch> {
  const { a, b, seq } = await pair(party, w);
  return async () => {
    const t0 = performance.now();
    for (let i = 0; i < STREAM_BATCH; i++) {
      const [from, to] = w === 'pingpong' && i % 2 === 1 ? [b, a] : [a, b];
      const m = message(seq.n++);
      const e = await from.encrypt(to.name, m);
      checkType(e, 'whisper', w);
      check(await to.decrypt(from.name, e), m, w);
    }
    return [STREAM_BATCH, performance.now() - t0];
  };
}

async function setup(party: (name: string) => Party): Promise<Batch> {
  let n = 0;
  return async () => {
    // Untimed: fresh parties and a bundle with fresh signed, Kyber and one-time pre-keys.
    const jobs = [];
    for (let i = 0; i < SETUP_BATCH; i++, n++) {
      const a = party(`alice-setup-${n}`);
      const b = party(`bob-setup-${n}`);
      jobs.push({ a, b, bundle: await b.bundle(true), m: message(n) });
    }
    const t0 = performance.now();
    for (const { a, b, bundle, m } of jobs) {
      await a.processBundle(b.name, bundle);
      const e = await a.encrypt(b.name, m);
      checkType(e, 'prekey', 'setup');
      check(await b.decrypt(a.name, e), m, 'setup');
    }
    return [SETUP_BATCH, performance.now() - t0];
  };
}

/** Runs workloads on one contender: `prepare` once, then `round(ms)` gives operations per second. */
export class WorkloadRunner {
  readonly #party: (name: string) => Party;
  readonly #batches = new Map<Workload, Batch>();
  constructor(party: (name: string) => Party) {
    this.#party = party;
  }

  async prepare(w: Workload): Promise<void> {
    this.#batches.set(w, w === 'setup' ? await setup(this.#party) : await stream(this.#party, w));
  }

  /** Batches until `ms` of timed wall-clock time is spent; operations per second. */
  async round(w: Workload, ms: number): Promise<number> {
    const batch = this.#batches.get(w);
    if (batch === undefined) throw new Error(`${w} not prepared`);
    let ops = 0;
    let spent = 0;
    while (spent < ms) {
      const [n, t] = await batch();
      ops += n;
      spent += t;
    }
    return (ops * 1000) / spent;
  }
}
