/**
 * Total validators: each takes any `unknown` (parsed JSON) and returns either the typed value or
 * an Invalid naming the offending path. They never throw, never coerce, and reject unknown
 * properties (a typo in a field name is an error, not a silently ignored field).
 * The same functions run in the server, the SDK and the browser.
 */
import { base64DecodedLength } from './base64.js';

export interface Invalid {
  readonly ok: false;
  /** JSON path of the offending value, e.g. `$.signedPreKey.signature`. */
  readonly path: string;
  /** Why, without echoing the value. */
  readonly reason: string;
}
export type Checked<T> = { readonly ok: true; readonly value: T } | Invalid;
export type Validator<T> = (value: unknown, path?: string) => Checked<T>;

export function ok<T>(value: T): Checked<T> {
  return { ok: true, value };
}
export function invalid(path: string, reason: string): Invalid {
  return { ok: false, path, reason };
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function string(opts: { min?: number; max: number; pattern?: RegExp }): Validator<string> {
  return (v, path = '$') => {
    if (typeof v !== 'string') return invalid(path, 'expected a string');
    if (v.length < (opts.min ?? 0)) return invalid(path, `shorter than ${opts.min ?? 0}`);
    if (v.length > opts.max) return invalid(path, `longer than ${opts.max}`);
    if (opts.pattern && !opts.pattern.test(v)) return invalid(path, 'does not match the required pattern');
    return ok(v);
  };
}

export function integer(min: number, max: number): Validator<number> {
  return (v, path = '$') => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return invalid(path, 'expected an integer');
    if (v < min || v > max) return invalid(path, `out of range ${min}..${max}`);
    return ok(v);
  };
}

export function literal<const L extends string>(...values: L[]): Validator<L> {
  return (v, path = '$') =>
    typeof v === 'string' && (values as string[]).includes(v) ? ok(v as L) : invalid(path, `expected one of ${values.join(', ')}`);
}

/**
 * Base64 bytes with an exact or bounded decoded length, and optionally a required first byte
 * (key type). The length is checked on the text, before decoding.
 */
export function base64Bytes(opts: { length?: number; min?: number; max?: number; firstByte?: number }): Validator<string> {
  const maxChars = Math.ceil((opts.length ?? opts.max ?? 0) / 3) * 4;
  return (v, path = '$') => {
    if (typeof v !== 'string') return invalid(path, 'expected a base64 string');
    if (v.length > maxChars) return invalid(path, 'too long');
    const n = base64DecodedLength(v);
    if (n < 0) return invalid(path, 'not canonical base64');
    if (opts.length !== undefined && n !== opts.length) return invalid(path, `expected ${opts.length} bytes, got ${n}`);
    if (opts.min !== undefined && n < opts.min) return invalid(path, `expected at least ${opts.min} bytes, got ${n}`);
    if (opts.max !== undefined && n > opts.max) return invalid(path, `expected at most ${opts.max} bytes, got ${n}`);
    if (opts.firstByte !== undefined) {
      // The first 6 bits are the first character, the next 2 the top bits of the second.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      const first = (alphabet.indexOf(v[0] ?? '') << 2) | (alphabet.indexOf(v[1] ?? '') >> 4);
      if (first !== opts.firstByte) return invalid(path, `expected key type 0x${opts.firstByte.toString(16).padStart(2, '0')}`);
    }
    return ok(v);
  };
}

export function array<T>(item: Validator<T>, opts: { min?: number; max: number }): Validator<T[]> {
  return (v, path = '$') => {
    if (!Array.isArray(v)) return invalid(path, 'expected an array');
    if (v.length < (opts.min ?? 0)) return invalid(path, `fewer than ${opts.min ?? 0} items`);
    if (v.length > opts.max) return invalid(path, `more than ${opts.max} items`);
    const out: T[] = [];
    for (let i = 0; i < v.length; i++) {
      const r = item(v[i], `${path}[${i}]`);
      if (!r.ok) return r;
      out.push(r.value);
    }
    return ok(out);
  };
}

type Shape = Record<string, Validator<unknown>>;
type Out<S extends Shape> = { [K in keyof S]: S[K] extends Validator<infer T> ? T : never };
type OptionalKeys<S extends Shape, O extends keyof S> = Omit<Out<S>, O> & Partial<Pick<Out<S>, O>>;

/**
 * An object with exactly these properties (`optional` ones may be absent; `undefined` counts as
 * absent only if the key is missing — JSON has no undefined). Unknown properties are rejected.
 */
export function object<S extends Shape>(shape: S): Validator<Out<S>>;
export function object<S extends Shape, O extends keyof S>(shape: S, optional: readonly O[]): Validator<OptionalKeys<S, O>>;
export function object<S extends Shape>(shape: S, optional: readonly (keyof S)[] = []): Validator<Out<S>> {
  const keys = Object.keys(shape);
  const validators = keys.map((k) => shape[k]!);
  const opt = keys.map((k) => (optional as readonly string[]).includes(k));
  // Child paths per parent path, built once: validation runs per WebSocket frame, and building
  // `${path}.${key}` strings on every call was a measurable share of the relay's CPU.
  const childPaths = new Map<string, string[]>();
  return (v, path = '$') => {
    if (!isPlainObject(v)) return invalid(path, 'expected an object');
    let known = 0;
    for (const k in v) {
      if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
      if (!Object.prototype.hasOwnProperty.call(shape, k)) return invalid(`${path}.${k}`, 'unknown property');
      known++;
    }
    let paths = childPaths.get(path);
    if (paths === undefined) {
      paths = keys.map((k) => `${path}.${k}`);
      if (childPaths.size < 64) childPaths.set(path, paths);
    }
    const out: Record<string, unknown> = {};
    let seen = 0;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if (!Object.prototype.hasOwnProperty.call(v, k)) {
        if (opt[i]) continue;
        return invalid(paths[i]!, 'required');
      }
      seen++;
      const r = validators[i]!(v[k], paths[i]!);
      if (!r.ok) return r;
      out[k] = r.value;
    }
    if (seen !== known) return invalid(path, 'unknown property');
    return ok(out as Out<S>);
  };
}

/** Parses JSON text without throwing. */
export function parseJson(text: string): Checked<unknown> {
  try {
    return ok(JSON.parse(text) as unknown);
  } catch {
    return invalid('$', 'malformed JSON');
  }
}
