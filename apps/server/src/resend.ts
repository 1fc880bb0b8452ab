/**
 * Resends (issue 17): a client that lost the `sent` answer to a send (the server died or the
 * connection dropped after the commit) sends the same frame again. Each store remembers, per
 * sending device, a digest of what it stored, in the same transaction as the message; a send whose
 * digest it remembers is answered `sent` with the stored copy's id and timestamp, and nothing is
 * stored again.
 *
 * The key is (sending device, SHA-256 of recipient address, ciphertext kind and body), not the
 * client's correlation id: a Signal ciphertext never repeats, so equal bytes to the same device
 * from the same device are the same message whatever id the client gave it, and two different
 * messages can never be taken for each other even if a client reuses ids. The sending device comes
 * from the authenticated socket, so no one can make another device's sends look like resends.
 *
 * Fan-outs (`send-multi`) are remembered the same way, one row per fan-out: its digest covers
 * every named device with its registration id, and each device's ciphertext kind and body, so
 * the identical frame sent again is recognised (a group message's shared body, or a per-device
 * set, never repeats either). The row's message id column holds how many copies it stored, which
 * is what the repeated `sent-multi` answer says. A fan-out that stored nothing (every mailbox
 * full) is not remembered, so its resend is written again.
 *
 * Bounds (docs/OPERATIONS.md, "Resends"): the memory is a ring of RESEND_MEMORY_PER_DEVICE rows
 * per sending device (the oldest is overwritten), and a row counts for RESEND_WINDOW_MS after its
 * message was stored (the expiry sweep deletes it then). A resend beyond either bound is stored
 * again; its recipient drops the copy (at-least-once delivery, as before).
 */
import { createHash } from 'node:crypto';
import { MAX_PENDING_SENDS_PER_CONNECTION } from '@tacit/api';
import type { NewFanout } from './fanout.js';
import { addressKey, type Address, type CiphertextKind } from './store.js';

/**
 * Remembered sends per sending device. A client resends only what had no answer when its
 * connection ended, at most MAX_PENDING_SENDS_PER_CONNECTION per connection, and resends it first
 * on the next one; four windows' worth covers a connection lost again during the resend.
 */
export const RESEND_MEMORY_PER_DEVICE = 4 * MAX_PENDING_SENDS_PER_CONNECTION;

/** How long after it was stored a send is recognised when sent again, ms. Also how long the server keeps the row. */
export const RESEND_WINDOW_MS = 24 * 60 * 60 * 1000;

/** Length of the stored digest (SHA-256). */
export const RESEND_DIGEST_BYTES = 32;

/** The digest a send is remembered by: recipient, kind and ciphertext (the sender is the row's key). */
export function sendDigest(to: Address, kind: CiphertextKind, body: Uint8Array): Uint8Array {
  const h = createHash('sha256');
  h.update(addressKey(to), 'utf8');
  h.update(Uint8Array.of(0, kind));
  h.update(body);
  const d = h.digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** First byte of a fan-out digest's input: no address key (a single send's) starts with it. */
const FANOUT_DOMAIN = Uint8Array.of(0, 0x66);

/**
 * The digest a fan-out is remembered by (the sender is the row's key): in order, each device's
 * address and registration id, and its ciphertext kind and SHA-256 (a group message's shared body
 * is hashed once). Lengths are prefixed, so no two fan-outs share an input.
 */
export function fanoutDigest(f: Pick<NewFanout, 'recipients'>): Uint8Array {
  const bodies = new Map<Uint8Array, Buffer>();
  const h = createHash('sha256');
  h.update(FANOUT_DOMAIN);
  const head = Buffer.alloc(12);
  for (const r of f.recipients) {
    for (const d of r.devices) {
      const address = Buffer.from(addressKey({ username: r.username, deviceId: d.deviceId }), 'utf8');
      let body = bodies.get(d.body);
      if (body === undefined) bodies.set(d.body, (body = createHash('sha256').update(d.body).digest()));
      head.writeUInt32BE(address.length, 0);
      head.writeUInt32BE(d.registrationId, 4);
      head.writeUInt32BE(d.kind, 8);
      h.update(head);
      h.update(address);
      h.update(body);
    }
  }
  const out = h.digest();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
