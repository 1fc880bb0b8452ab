// `npm start` (prestart): builds the web client once if apps/web/dist is missing, so a fresh
// clone serves the browser client without a separate build step.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const web = join(import.meta.dirname, '..');
if (!existsSync(join(web, 'dist', 'index.html'))) {
  process.stdout.write('building the web client (apps/web/dist)...\n');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['run', 'build', '-w', '@tacit/web'], { cwd: join(web, '..', '..'), stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write('the web client did not build; the server will start without it\n');
  }
}
