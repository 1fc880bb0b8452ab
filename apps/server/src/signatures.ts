import { xeddsaVerify } from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import type { SignatureVerifier } from './context.js';

const backend = nodeBackend();

/**
 * The default verifier: @tacit/protocol's XEdDSA (libsignal's variant), with Node's SHA-512.
 * `message` is the full serialized pre-key public key (type byte included). Never throws.
 */
export const defaultVerifier: SignatureVerifier = (publicKey, message, signature) => {
  try {
    return xeddsaVerify(publicKey, message, signature, backend);
  } catch {
    return false;
  }
};
