/**
 * How one kind of record is turned into bytes and back. A codec's `decode` is total: malformed
 * bytes give STATE_CORRUPT naming the kind of record, never a stray TypeError.
 *
 * Three shapes cover every record: JSON for small structured records written only by us, raw
 * bytes for protocol records (stored once, in the protocol's own serialization), and a JSON
 * header followed by a byte blob for records that carry text or ciphertext (no escaping, so a
 * record's size is its content's size: control characters stay one byte each).
 */
import { utf8Decode, utf8Encode } from './bytes.js';
import { ClientError } from './errors.js';

export interface RecordCodec<V> {
  /** What the record is, for error messages ("session", "message", ...). */
  readonly kind: string;
  encode(value: V): Uint8Array;
  /** Throws STATE_CORRUPT if the bytes are not a valid record of this kind. */
  decode(bytes: Uint8Array): V;
}

export function corrupt(kind: string, detail?: string): ClientError {
  return new ClientError('STATE_CORRUPT', `the local ${kind} record is damaged${detail ? ` (${detail})` : ''}`);
}

/** Parses JSON from our own records; anything else is STATE_CORRUPT for `kind`. */
function parseJson(kind: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8Decode(bytes));
  } catch {
    throw corrupt(kind, 'not JSON');
  }
}

/** A JSON record whose shape `check` validates (returning the typed value or undefined). */
export function jsonCodec<V>(kind: string, check: (v: unknown) => V | undefined): RecordCodec<V> {
  return {
    kind,
    encode: (v) => utf8Encode(JSON.stringify(v)),
    decode: (b) => {
      const v = check(parseJson(kind, b));
      if (v === undefined) throw corrupt(kind, 'unexpected shape');
      return v;
    },
  };
}

/** Bytes stored as they are (protocol records, keys). `check` may refuse a wrong length. */
export function bytesCodec(kind: string, check: (b: Uint8Array) => boolean = () => true): RecordCodec<Uint8Array> {
  return {
    kind,
    encode: (v) => v,
    decode: (b) => {
      if (!check(b)) throw corrupt(kind, 'unexpected length');
      return b;
    },
  };
}

export interface WithBlob<M> {
  readonly meta: M;
  readonly blob: Uint8Array;
}

/** Layout: header length (4 bytes, big-endian) | header JSON | blob. */
export function blobCodec<M>(kind: string, check: (v: unknown) => M | undefined): RecordCodec<WithBlob<M>> {
  return {
    kind,
    encode: ({ meta, blob }) => {
      const head = utf8Encode(JSON.stringify(meta));
      const out = new Uint8Array(4 + head.length + blob.length);
      new DataView(out.buffer).setUint32(0, head.length);
      out.set(head, 4);
      out.set(blob, 4 + head.length);
      return out;
    },
    decode: (b) => {
      if (b.length < 4) throw corrupt(kind, 'truncated');
      const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);
      if (n > b.length - 4) throw corrupt(kind, 'truncated');
      const meta = check(parseJson(kind, b.subarray(4, 4 + n)));
      if (meta === undefined) throw corrupt(kind, 'unexpected shape');
      return { meta, blob: b.subarray(4 + n) };
    },
  };
}

// ---- shape checks for `check` functions ----

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A safe integer >= min (default 0). */
export function isInt(v: unknown, min = 0): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

export function isStr(v: unknown, max = 1024): v is string {
  return typeof v === 'string' && v.length <= max;
}

/**
 * The value under `key` in a map decoded from JSON or built by spreading one (receipt times,
 * reactions), if the map itself holds it. Such maps keep Object.prototype, and `constructor` is a
 * valid username: a plain `m[key]` would find the inherited function for a user of that name.
 */
export function ownValue<T>(m: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return m !== undefined && Object.hasOwn(m, key) ? m[key] : undefined;
}

export function optional<T>(v: unknown, check: (x: unknown) => x is T): v is T | undefined {
  return v === undefined || check(v);
}
