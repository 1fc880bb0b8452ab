/** Byte helpers at the server's JSON edge: canonical base64 (already validated) to and from bytes. */

export const bytes = (b64: string): Uint8Array => {
  const b = Buffer.from(b64, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};

export const b64 = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
