// The `tacit` command runs from a JavaScript bundle built at `npm ci` (the root `prepare` script),
// and bin/tacit.js rebuilds it when a source changed, so an edit never runs stale code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './harness.ts';

test('npm ci builds the bundle: the root package runs the build script as prepare', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
  assert.equal(pkg.scripts['prepare'], 'node apps/cli/scripts/build.mjs');
  assert.equal(pkg.bin['tacit'], 'apps/cli/bin/tacit.js');
});

test('bin/tacit.js builds a missing bundle, rebuilds after a source edit, and reuses a fresh one', async () => {
  // A copy of apps/cli whose sources this test may edit; packages and dependencies come from
  // the repository through a node_modules link.
  const dir = await tempDir('build');
  try {
    const cli = join(dir.path, 'apps', 'cli');
    mkdirSync(cli, { recursive: true });
    for (const part of ['bin', 'scripts', 'src', 'package.json']) cpSync(join(ROOT, 'apps', 'cli', part), join(cli, part), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir.path, 'node_modules'));
    const bin = join(cli, 'bin', 'tacit.js');
    const help = () => {
      const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    const bundle = join(cli, 'dist', 'tacit.mjs');

    assert.match(help(), /^tacit — end-to-end encrypted chat/);
    const manifest = JSON.parse(readFileSync(join(cli, 'dist', 'tacit.json'), 'utf8')) as { inputs: string[] };
    assert.ok(manifest.inputs.includes('apps/cli/src/main.ts'));
    assert.ok(manifest.inputs.some((p) => p.includes('packages/client/src/')), 'the SDK is bundled');
    assert.ok(manifest.inputs.every((p) => !p.includes('node_modules')));
    const built = statSync(bundle).mtimeMs;

    help();
    assert.equal(statSync(bundle).mtimeMs, built, 'a fresh bundle is not rebuilt');

    const main = join(cli, 'src', 'main.ts');
    writeFileSync(main, readFileSync(main, 'utf8').replace('end-to-end encrypted chat', 'edited help text'));
    assert.match(help(), /^tacit — edited help text/, 'the edit shows at the next run');
  } finally {
    await dir.remove();
  }
});
