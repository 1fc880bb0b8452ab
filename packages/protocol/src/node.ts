// Node-only entry point: `@tacit/protocol/node`.
export { MAX_CACHED_SIGNING_KEYS, MAX_CACHED_VERIFYING_KEYS, nodeBackend, RANDOM_POOL_BYTES } from './backend-node.ts';
