// Node-only entry point: `@tacit/protocol/node`.
export { MAX_CACHED_SIGNING_KEYS, nodeBackend } from './backend-node.ts';
