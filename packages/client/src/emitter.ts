/** A minimal typed event emitter (isomorphic; listeners' exceptions never reach the emitter). */
export class Emitter<M extends { [K in keyof M]: unknown }> {
  #listeners = new Map<keyof M, Set<(payload: never) => void>>();

  on<K extends keyof M>(event: K, listener: (payload: M[K]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return () => set.delete(listener as (payload: never) => void);
  }

  emit<K extends keyof M>(event: K, payload: M[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const l of [...set]) {
      try {
        (l as (p: M[K]) => void)(payload);
      } catch {
        // A listener's failure is its own.
      }
    }
  }
}
