export { buildServer, type ServerOptions, type TacitServer } from './server.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
export { PostgresStore, type PostgresStoreOptions } from './postgres.js';
export { DEFAULT_LIMITS, envName, limitsFromEnv, resolveLimits, type Limits } from './config.js';
export type { SignatureVerifier } from './context.js';
export { ServerError, isServerError } from './errors.js';
export * from './store.js';
export { RedisCluster, type Cluster, type ClusterHandlers } from './cluster.js';
