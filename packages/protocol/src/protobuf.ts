// The minimal protobuf our messages and records need: varint (uint32) and length-delimited fields,
// written in the order the caller gives (libsignal's encoder writes field-number order, so our
// bytes equal its bytes), read by a bounded, total parser: unknown fields of any valid wire type
// are skipped, and every failure is a ProtocolError with code DECODE.
import { concatBytes } from './bytes.ts';
import { fail } from './errors.ts';

export type Field = { tag: number; wire: 0; value: number } | { tag: number; wire: 2; value: Uint8Array };

export class Writer {
  #parts: number[] = [];
  #chunks: Uint8Array[] = [];
  #flush(): void {
    if (this.#parts.length > 0) {
      this.#chunks.push(Uint8Array.from(this.#parts));
      this.#parts = [];
    }
  }
  varint(n: number): void {
    let v = n >>> 0;
    while (v >= 0x80) {
      this.#parts.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    this.#parts.push(v);
  }
  uint32(tag: number, n: number): void {
    this.varint((tag << 3) | 0);
    this.varint(n);
  }
  bytes(tag: number, b: Uint8Array): void {
    this.varint((tag << 3) | 2);
    this.varint(b.length);
    this.#flush();
    this.#chunks.push(b);
  }
  finish(): Uint8Array {
    this.#flush();
    return concatBytes(...this.#chunks);
  }
}

/** Every known-wire-type field in order of appearance (repeated fields appear several times). */
export function readFields(buf: Uint8Array): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  const readVarint = (): number => {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) fail('DECODE', 'truncated varint');
      const b = buf[pos++] as number;
      if (shift < 32) result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        // uint32 fields keep the low 32 bits, as protobuf decoders do.
        return result % 2 ** 32;
      }
      shift += 7;
    }
    return fail('DECODE', 'varint too long');
  };
  while (pos < buf.length) {
    const key = readVarint();
    const tag = Math.floor(key / 8);
    const wire = key & 7;
    if (tag === 0) fail('DECODE', 'field number 0');
    switch (wire) {
      case 0:
        fields.push({ tag, wire: 0, value: readVarint() });
        break;
      case 1:
        if (pos + 8 > buf.length) fail('DECODE', 'truncated fixed64');
        pos += 8;
        break;
      case 2: {
        const len = readVarint();
        if (len > buf.length - pos) fail('DECODE', `length ${len} past end`);
        fields.push({ tag, wire: 2, value: buf.subarray(pos, pos + len) });
        pos += len;
        break;
      }
      case 5:
        if (pos + 4 > buf.length) fail('DECODE', 'truncated fixed32');
        pos += 4;
        break;
      default:
        fail('DECODE', `unsupported wire type ${wire}`);
    }
  }
  return fields;
}

/** Parse a message whose fields are all singular: the last occurrence of a field wins. */
export function parseFields(buf: Uint8Array): Map<number, Field> {
  const fields = new Map<number, Field>();
  for (const f of readFields(buf)) fields.set(f.tag, f);
  return fields;
}

export function optUint(fields: Map<number, Field>, tag: number): number | undefined {
  const f = fields.get(tag);
  if (f === undefined) return undefined;
  if (f.wire !== 0) fail('DECODE', `field ${tag} has the wrong wire type`);
  return f.value;
}

export function reqUint(fields: Map<number, Field>, tag: number, name: string): number {
  const v = optUint(fields, tag);
  if (v === undefined) fail('DECODE', `missing ${name}`);
  return v;
}

export function optBytes(fields: Map<number, Field>, tag: number): Uint8Array | undefined {
  const f = fields.get(tag);
  if (f === undefined) return undefined;
  if (f.wire !== 2) fail('DECODE', `field ${tag} has the wrong wire type`);
  return f.value;
}

export function reqBytes(fields: Map<number, Field>, tag: number, name: string): Uint8Array {
  const v = optBytes(fields, tag);
  if (v === undefined) fail('DECODE', `missing ${name}`);
  return v;
}
