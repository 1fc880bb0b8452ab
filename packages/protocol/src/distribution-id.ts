// A sender-key distribution id (DESIGN §2.7): a 16-byte UUID naming one sender key of one group
// for one sender. libsignal accepts any 16 bytes (Uuid::from_slice), and so do we; new ids are
// random version-4 UUIDs. A group rotates its sender keys by moving to a new distribution id.
import { type CryptoBackend } from './backend.ts';
import { bytesEqual, fromHex, toHex } from './bytes.ts';
import { fail } from './errors.ts';

export const DISTRIBUTION_ID_LENGTH = 16;

const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const inspect = Symbol.for('nodejs.util.inspect.custom');

export class DistributionId {
  readonly #bytes: Uint8Array;
  /** The UUID text, made once: every group message names its store record and lock by it. */
  #text: string | undefined;
  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** Any 16 bytes, as they travel in field 1 of both sender-key messages. */
  static fromBytes(bytes: Uint8Array): DistributionId {
    if (!(bytes instanceof Uint8Array) || bytes.length !== DISTRIBUTION_ID_LENGTH) {
      fail('INVALID_ARGUMENT', `distribution id must be ${DISTRIBUTION_ID_LENGTH} bytes, got ${bytes?.length}`);
    }
    return new DistributionId(bytes.slice());
  }

  /** The textual UUID form (8-4-4-4-12 hex digits, either case), as libsignal's API takes it. */
  static parse(text: string): DistributionId {
    if (typeof text !== 'string' || !UUID_PATTERN.test(text)) fail('INVALID_ARGUMENT', 'distribution id is not a UUID');
    return new DistributionId(fromHex(text.replaceAll('-', '')));
  }

  /** A fresh random (version 4, RFC 9562) id. */
  static random(backend: CryptoBackend): DistributionId {
    const b = backend.randomBytes(DISTRIBUTION_ID_LENGTH);
    b[6] = ((b[6] as number) & 0x0f) | 0x40;
    b[8] = ((b[8] as number) & 0x3f) | 0x80;
    return new DistributionId(b);
  }

  serialize(): Uint8Array {
    return this.#bytes.slice();
  }

  /** Internal: the bytes without a copy (never mutate). */
  get bytesUnsafe(): Uint8Array {
    return this.#bytes;
  }

  equals(other: DistributionId): boolean {
    return bytesEqual(this.#bytes, other.#bytes);
  }

  /** Lower-case hyphenated UUID; also the form stores use as a key. */
  toString(): string {
    if (this.#text === undefined) {
      const h = toHex(this.#bytes);
      this.#text = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
    return this.#text;
  }

  /** Not a secret: it travels in the clear in every group message. */
  toJSON(): string {
    return this.toString();
  }

  [inspect](): string {
    return `DistributionId(${this.toString()})`;
  }
}
