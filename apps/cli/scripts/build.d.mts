/** Types of build.mjs (a plain JavaScript script, so that bin/tacit.js can run it without tsx). */
export declare const BUNDLE: string;
export declare const MANIFEST: string;
export declare function hashInputs(inputs: readonly string[], read?: (rel: string) => Uint8Array | undefined): string | undefined;
export declare function isFresh(): boolean;
export declare function build(): Promise<{ inputs: number; bytes: number }>;
export declare function ensureBuilt(): Promise<void>;
