/**
 * Curve25519 public keys checked at upload (issue 13.8): a one-time EC pre-key travels unsigned,
 * so the server is the only place a malformed one can be caught before it is handed to every
 * client that fetches it. A key must be Signal's 33-byte form (type 0x05, then u), with u a
 * canonical field element (below p = 2^255 - 19) that is not a point of small order (whose DH
 * output is fixed whatever the peer's secret, which clients refuse as non-contributory).
 */
import { PublicKey } from '@tacit/protocol';

const P = (1n << 255n) - 19n;

/**
 * The u-coordinates of Curve25519's points of small order below p: 0 and 1, p - 1 (order 4), and
 * the two points of order 8 (as listed by Bernstein, "Curve25519: new Diffie-Hellman speed
 * records", and checked by libsodium's `has_small_order`).
 */
const SMALL_ORDER_U: readonly bigint[] = [
  0n,
  1n,
  P - 1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
];

function uOf(raw: Uint8Array): bigint {
  let u = 0n;
  for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(raw[i]!);
  return u;
}

/** Whether `key` is a serialized Curve25519 public key fit for Diffie-Hellman. Never throws. */
export function isUsableCurvePublicKey(key: Uint8Array): boolean {
  let pk: PublicKey;
  try {
    pk = PublicKey.deserialize(key);
  } catch {
    return false;
  }
  const u = uOf(pk.raw);
  return !SMALL_ORDER_U.includes(u);
}
