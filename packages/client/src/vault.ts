/**
 * Where the SDK keeps its local state: one opaque byte string, encrypted at rest by the vault.
 * Node seals a file with a passphrase (`@tacit/client/node`); a browser vault can keep it in
 * IndexedDB under a non-extractable WebCrypto key. The SDK only ever sees plaintext state bytes.
 */
export interface StateVault {
  /** The last state written, or undefined if none was ever written. */
  read(): Promise<Uint8Array | undefined>;
  /** Replace the state. Atomic: after a crash, `read` returns either the old or the new state. */
  write(state: Uint8Array): Promise<void>;
}

/** A vault in memory, for tests and throwaway clients. */
export class MemoryVault implements StateVault {
  #state: Uint8Array | undefined;
  writes = 0;

  async read(): Promise<Uint8Array | undefined> {
    return this.#state === undefined ? undefined : this.#state.slice();
  }

  async write(state: Uint8Array): Promise<void> {
    this.#state = state.slice();
    this.writes++;
  }
}
