// Builds the `tacit` command into one JavaScript file, so that running it costs little more than
// Node's own start-up (running the TypeScript through tsx took seconds per command).
//
//   node apps/cli/scripts/build.mjs     build now (the root package's `prepare` runs it at npm ci)
//
// apps/cli/dist/tacit.mjs is the bundle: the CLI, the SDK, the protocol and their pure-JS
// dependencies; packages with native code (better-sqlite3) stay external. apps/cli/dist/tacit.json
// lists the bundle's source files (everything outside node_modules) with a hash of their contents.
// bin/tacit.js compares that hash before each run and rebuilds when a source changed, so an edit
// (or a git checkout) never runs stale code; dependencies change only through npm ci, which
// rebuilds.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = resolve(HERE, '..');
const ROOT = resolve(CLI, '..', '..');
export const BUNDLE = join(CLI, 'dist', 'tacit.mjs');
export const MANIFEST = join(CLI, 'dist', 'tacit.json');

/** Hash of the named files' contents (paths relative to the repository root), or undefined if one is missing. */
export function hashInputs(inputs, read = (rel) => readFileSync(join(ROOT, rel))) {
  const h = createHash('sha256');
  for (const rel of inputs) {
    let data;
    try {
      data = read(rel);
    } catch {
      return undefined;
    }
    h.update(rel).update('\0').update(String(data.length)).update('\0').update(data);
  }
  return h.digest('hex');
}

/** True when the bundle exists and was built from the sources as they are now. */
export function isFresh() {
  try {
    const m = JSON.parse(readFileSync(MANIFEST, 'utf8'));
    return existsSync(BUNDLE) && Array.isArray(m.inputs) && typeof m.hash === 'string' && hashInputs(m.inputs) === m.hash;
  } catch {
    return false;
  }
}

/** A package with native code cannot be bundled; Node loads it from node_modules at run time. */
function isNative(name) {
  const parts = name.split('/');
  const pkg = name.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  return existsSync(join(ROOT, 'node_modules', pkg, 'binding.gyp'));
}

/** Builds the bundle and its manifest. Safe to run concurrently: each file is replaced by a rename. */
export async function build() {
  const { build: esbuild } = await import('esbuild');
  // Our sources are read here, once: the manifest hashes exactly the bytes that were bundled, so
  // an edit racing the build makes the next run rebuild.
  const read = new Map();
  const r = await esbuild({
    entryPoints: [join(CLI, 'src', 'main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    outfile: BUNDLE,
    logLevel: 'error',
    // Bundled CommonJS (ws) calls require() for Node's own modules.
    banner: { js: "import { createRequire as __tacitRequire } from 'node:module'; const require = __tacitRequire(import.meta.url);" },
    plugins: [
      {
        name: 'native-external',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (a) => (!a.path.startsWith('node:') && isNative(a.path) ? { path: a.path, external: true } : undefined));
        },
      },
      {
        name: 'record-sources',
        setup(b) {
          b.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, (a) => {
            const rel = relative(ROOT, a.path);
            if (rel.split(/[\\/]/).includes('node_modules')) return undefined;
            const data = readFileSync(a.path);
            read.set(rel, data);
            return { contents: data, loader: /\.[cm]?tsx?$/.test(a.path) ? (a.path.endsWith('x') ? 'tsx' : 'ts') : a.path.endsWith('x') ? 'jsx' : 'js' };
          });
        },
      },
    ],
  });
  const inputs = [...read.keys()].sort();
  const hash = hashInputs(inputs, (rel) => read.get(rel));
  mkdirSync(dirname(BUNDLE), { recursive: true });
  const tmp = `.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(BUNDLE + tmp, r.outputFiles[0].contents);
  renameSync(BUNDLE + tmp, BUNDLE);
  writeFileSync(MANIFEST + tmp, JSON.stringify({ hash, inputs }) + '\n');
  renameSync(MANIFEST + tmp, MANIFEST);
  return { inputs: inputs.length, bytes: r.outputFiles[0].contents.byteLength };
}

/** Builds unless the bundle is fresh. */
export async function ensureBuilt() {
  if (!isFresh()) await build();
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t = Date.now();
  const r = await build();
  process.stdout.write(`tacit CLI built: apps/cli/dist/tacit.mjs (${Math.round(r.bytes / 1024)} KB from ${r.inputs} source files) in ${Date.now() - t} ms\n`);
}
