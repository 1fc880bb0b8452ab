/**
 * Builds a test page (an HTML entry under test/pages) with Vite, as the web client is built, and
 * serves the result on a loopback port. The page runs in Chromium like the real client.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { build } from 'vite';

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

export interface ServedPage {
  url: string;
  close(): Promise<void>;
}

export async function servePage(htmlName: string): Promise<ServedPage> {
  const root = join(import.meta.dirname, 'pages');
  const outDir = mkdtempSync(join(tmpdir(), 'tacit-page-'));
  await build({
    configFile: false,
    root,
    base: './',
    logLevel: 'warn',
    resolve: { conditions: ['browser', 'module', 'import', 'default'] },
    build: { outDir, emptyOutDir: true, target: 'es2022', modulePreload: false, rollupOptions: { input: join(root, htmlName) } },
  });
  const server: Server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    try {
      const body = readFileSync(join(outDir, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/${htmlName}`,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}
