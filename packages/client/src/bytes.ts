// Byte helpers for the SDK: the protocol's (one implementation of each), and base64 from the
// wire contract, which is what the server speaks.
import { fromBase64 } from '@tacit/api';
import { ClientError } from './errors.js';

export { bytesEqual, concatBytes, fromHex, toHex, utf8Decode, utf8Encode } from '@tacit/protocol';
export { fromBase64, toBase64 } from '@tacit/api';

/** Base64 from our own records; damage is STATE_CORRUPT. */
export function unb64(s: string): Uint8Array {
  const out = fromBase64(s);
  if (out === undefined) throw new ClientError('STATE_CORRUPT', 'the local state holds malformed bytes');
  return out;
}
