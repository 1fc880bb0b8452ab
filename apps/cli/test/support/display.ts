// A displaying app on the SDK, for the kill tests: opens a home, connects, and prints every new
// message as one JSON line, through the SDK's "take what is new for display" (printing and
// marking read are one commit). Runs until killed.
import { writeSync } from 'node:fs';
import { openHome } from '@tacit/client/node';

const home = process.argv[2];
const passphrase = process.env['TACIT_PASSPHRASE'];
if (home === undefined || passphrase === undefined) {
  process.stderr.write('usage: display.ts <home> (TACIT_PASSPHRASE set)\n');
  process.exit(2);
}
const { client } = await openHome({ home, passphrase });
await client.connect();
client.watchForDisplay((list) => {
  for (const m of list) writeSync(1, JSON.stringify({ event: 'message', id: m.id, from: m.from, text: m.text }) + '\n');
});
writeSync(1, JSON.stringify({ event: 'display-ready' }) + '\n');
