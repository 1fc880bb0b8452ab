// Byte helpers for the SDK: the protocol's (one implementation of each), and base64 from the
// wire contract, which is what the server speaks.
export { bytesEqual, concatBytes, toHex, utf8Decode, utf8Encode } from '@tacit/protocol';
export { fromBase64, toBase64 } from '@tacit/api';
