// A small mutation fuzzer for decoders: starting from valid inputs (seeds), it feeds each decoder
// bytes or JSON text that are random, mutated byte by byte, or mutated as JSON trees, and checks
// that the decoder either returns or throws its package's typed error — never a TypeError, a
// RangeError or anything else. Deterministic: a failure prints the seed and iteration that
// reproduce it. `npm test` runs a short pass (fuzz.test.ts); `npm run fuzz` the full one.

/** One decoder under test. */
export interface FuzzTarget {
  readonly name: string;
  /** `bytes`: the decoder takes a Uint8Array; `text`: a string (JSON text or a header value). */
  readonly input: 'bytes' | 'text';
  /** Valid inputs to mutate. For `text` targets and JSON-encoded `bytes`, JSON-tree mutation applies too. */
  readonly seeds: readonly (Uint8Array | string)[];
  /** True when the seeds are JSON text (or UTF-8 JSON bytes): JSON-tree mutations are worth trying. */
  readonly json?: boolean;
  readonly decode: (input: Uint8Array | string) => unknown;
  /** True for the errors the decoder is documented to throw; a decoder without it must never throw. */
  readonly expected?: (e: unknown) => boolean;
}

export interface FuzzResult {
  readonly name: string;
  readonly inputs: number;
  /** Inputs the decoder accepted (returned without throwing, or an `ok` result). */
  readonly accepted: number;
  readonly ms: number;
  /** Slowest single input, ms: a decoder that is quadratic somewhere shows here. */
  readonly slowestMs: number;
}

export class FuzzFailure extends Error {
  constructor(
    readonly target: string,
    readonly seed: number,
    readonly iteration: number,
    readonly input: Uint8Array | string,
    override readonly cause: unknown,
  ) {
    const shown = typeof input === 'string' ? JSON.stringify(input.slice(0, 2000)) : Buffer.from(input.subarray(0, 2000)).toString('hex');
    const why = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
    super(`fuzz target ${target} failed at seed ${seed}, iteration ${iteration} (${why}); input (${input.length}): ${shown}`);
    this.name = 'FuzzFailure';
  }
}

/** xorshift32: small, fast, deterministic. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s;
  }
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)] as T;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

const INTERESTING_BYTES = [0x00, 0x01, 0x05, 0x08, 0x0a, 0x22, 0x33, 0x44, 0x5c, 0x7f, 0x80, 0xc0, 0xef, 0xfe, 0xff];

/** One random byte-level mutation (possibly several stacked). */
function mutateBytes(rng: Rng, input: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  let b: Uint8Array = input.slice();
  const rounds = 1 + rng.int(rng.chance(0.2) ? 8 : 2);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(9)) {
      case 0: // flip a bit
        if (b.length > 0) b[at % b.length]! ^= 1 << rng.int(8);
        break;
      case 1: // set a random or interesting byte
        if (b.length > 0) b[at % b.length] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.next() & 0xff;
        break;
      case 2: // truncate
        b = b.subarray(0, at);
        break;
      case 3: {
        // delete a range
        const n = 1 + rng.int(16);
        b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + n)));
        break;
      }
      case 4: // insert random bytes
        b = concat(b.subarray(0, at), rng.bytes(1 + rng.int(16)), b.subarray(at));
        break;
      case 5: {
        // duplicate a range (repeated fields, overlong lengths)
        const n = 1 + rng.int(32);
        b = concat(b.subarray(0, at), b.subarray(at, at + n), b.subarray(at));
        break;
      }
      case 6: {
        // splice with another seed
        const o = rng.pick(others);
        const from = rng.int(o.length + 1);
        b = concat(b.subarray(0, at), o.subarray(from, from + 1 + rng.int(64)));
        break;
      }
      case 7: // overlong varint / length prefix
        b = concat(b.subarray(0, at), Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), b.subarray(at));
        break;
      default: // append
        b = concat(b, rng.bytes(1 + rng.int(8)));
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const INTERESTING_VALUES: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1,
  0.5,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  -(2 ** 53),
  1e308,
  '',
  'a',
  '0',
  '__proto__',
  'constructor',
  '\u202e',
  '\ud800',
  'x'.repeat(300),
  'AAAA',
  'BQ==',
  '====',
  [],
  {},
  [null],
  { __proto__: 1 },
];
const INTERESTING_KEYS = ['__proto__', 'constructor', 'prototype', 'type', 'id', 'toString', 'hasOwnProperty', '', 'v', 'length'];

function randomJson(rng: Rng, depth: number): unknown {
  if (depth <= 0 || rng.chance(0.6)) return rng.pick(INTERESTING_VALUES);
  if (rng.chance(0.5)) return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth - 1));
  const o: Record<string, unknown> = {};
  for (let i = rng.int(4); i > 0; i--) o[rng.pick(INTERESTING_KEYS)] = randomJson(rng, depth - 1);
  return o;
}

/** A structural mutation of a parsed JSON value: replace, delete, add, retype, nest deeply. */
function mutateJson(rng: Rng, value: unknown, depth = 0): unknown {
  const isObj = typeof value === 'object' && value !== null;
  if (!isObj || depth > 8 || rng.chance(0.15)) {
    switch (rng.int(6)) {
      case 0:
        return randomJson(rng, 2);
      case 1:
        return typeof value === 'string' ? value.slice(0, rng.int(value.length + 1)) : rng.pick(INTERESTING_VALUES);
      case 2:
        return typeof value === 'string' ? value + String.fromCharCode(rng.int(0x10000)) : value;
      case 3:
        return typeof value === 'number' ? value + rng.pick([1, -1, 0.5, 2 ** 32, -(2 ** 53)]) : value;
      case 4: {
        // deep nesting
        let v: unknown = value;
        for (let i = rng.int(200); i > 0; i--) v = [v];
        return v;
      }
      default:
        return [value];
    }
  }
  if (Array.isArray(value)) {
    const a = value.slice();
    if (a.length > 0 && rng.chance(0.7)) {
      const i = rng.int(a.length);
      a[i] = mutateJson(rng, a[i], depth + 1);
    } else if (rng.chance(0.5)) a.push(randomJson(rng, 2));
    else a.splice(rng.int(a.length + 1), 1);
    if (rng.chance(0.05)) for (let i = rng.int(300); i > 0; i--) a.push(a[0]);
    return a;
  }
  const o: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(o);
  const r = rng.int(10);
  if (keys.length > 0 && r < 6) {
    const k = rng.pick(keys);
    o[k] = mutateJson(rng, o[k], depth + 1);
  } else if (keys.length > 0 && r < 8) delete o[rng.pick(keys)];
  else Object.defineProperty(o, rng.pick(INTERESTING_KEYS), { value: randomJson(rng, 2), enumerable: true, writable: true, configurable: true });
  return o;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The next input for a target: random, byte-mutated or JSON-mutated, as bytes or text. */
export function nextInput(rng: Rng, target: FuzzTarget, seedBytes: readonly Uint8Array[], seedJson: readonly unknown[]): Uint8Array | string {
  const roll = rng.int(100);
  let bytes: Uint8Array;
  if (roll < 5) bytes = rng.bytes(rng.int(rng.chance(0.1) ? 4096 : 96));
  else if (seedJson.length > 0 && roll < 55) bytes = encoder.encode(JSON.stringify(mutateJson(rng, rng.pick(seedJson))) ?? 'null');
  else bytes = mutateBytes(rng, rng.pick(seedBytes), seedBytes);
  return target.input === 'bytes' ? bytes : decoder.decode(bytes);
}

function accepted(out: unknown): boolean {
  if (typeof out === 'object' && out !== null && 'ok' in out) return (out as { ok: unknown }).ok === true;
  return out !== undefined;
}

/**
 * Runs `target` for `inputs` inputs (or until `deadline`, ms since the epoch), from `seed`.
 * Throws FuzzFailure on the first input the decoder mishandles.
 */
export function fuzz(target: FuzzTarget, opts: { inputs: number; seed: number; deadline?: number }): FuzzResult {
  const rng = new Rng(opts.seed);
  const seedBytes = target.seeds.map((s) => (typeof s === 'string' ? encoder.encode(s) : s));
  const seedJson: unknown[] = [];
  if (target.json === true) for (const s of seedBytes) seedJson.push(JSON.parse(decoder.decode(s)));
  // Every seed must decode: otherwise the target is set up wrong and fuzzing it proves little.
  for (const [i, s] of target.seeds.entries()) {
    const out = target.decode(typeof s === 'string' || target.input === 'bytes' ? s : decoder.decode(s));
    if (!accepted(out)) throw new Error(`fuzz target ${target.name}: seed ${i} does not decode`);
  }
  let ok = 0;
  let slowest = 0;
  const start = performance.now();
  let i = 0;
  for (; i < opts.inputs; i++) {
    if ((i & 1023) === 0 && opts.deadline !== undefined && Date.now() > opts.deadline) break;
    const input = nextInput(rng, target, seedBytes, seedJson);
    const t0 = (i & 63) === 0 ? performance.now() : 0;
    try {
      if (accepted(target.decode(input))) ok++;
    } catch (e) {
      if (target.expected === undefined || !target.expected(e)) throw new FuzzFailure(target.name, opts.seed, i, input, e);
    }
    if (t0 !== 0) slowest = Math.max(slowest, performance.now() - t0);
  }
  return { name: target.name, inputs: i, accepted: ok, ms: performance.now() - start, slowestMs: slowest };
}
