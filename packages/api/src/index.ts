export * from './limits.js';
export * from './errors.js';
export * from './base64.js';
export * from './validate.js';
export * from './keys.js';
export * from './accounts.js';
export * from './frames.js';
export * from './routes.js';
