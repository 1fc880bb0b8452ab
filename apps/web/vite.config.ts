// Builds the browser client into apps/web/dist, which the tacit server serves at `/`.
// The workspace packages export TypeScript source (package.json "exports"); Vite transforms it.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: './',
  // Only the browser entry points: the Node-only ones (`@tacit/*/node`) must never be bundled.
  resolve: { conditions: ['browser', 'module', 'import', 'default'] },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // One small bundle; no lazy chunks fetched later.
    modulePreload: false,
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  // The key worker (src/keygen-worker.ts) is a module worker: its own script, same origin.
  worker: { format: 'es' },
  server: { host: '127.0.0.1' },
});
