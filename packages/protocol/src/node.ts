// Node-only entry point: `@tacit/protocol/node`.
export { nodeBackend } from './backend-node.ts';
