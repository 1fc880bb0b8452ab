/**
 * The storm, small (issues 13 "Faults" and 17; storm.ts says what is measured): SDK clients
 * exchange messages while the server is killed with `kill -9` several times; on SQLite, and with
 * two nodes on PostgreSQL + Redis where the killed node's clients reconnect to the other. Nothing
 * acknowledged is lost, nothing is shown twice, nothing is reordered per sender, and no resend is
 * stored again. `npm run storm` is the full size (10 clients, 10,000 messages).
 *
 * Size: TACIT_STORM_CLIENTS (default 4), TACIT_STORM_MESSAGES (default 240), TACIT_STORM_KILLS
 * (default 3). The cluster case needs PostgreSQL and Redis (postgres-env.ts), skipped with one
 * line without them (a failure under TACIT_REQUIRE_SERVICES=1).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { runStorm, stormLine, type StormReport } from './storm.js';
import { databaseUrl, dropSchemas, newSchema, redisUrl, testWithServices } from './postgres-env.js';

const CLIENTS = Number(process.env['TACIT_STORM_CLIENTS'] ?? 4);
const MESSAGES = Number(process.env['TACIT_STORM_MESSAGES'] ?? 240);
const KILLS = Number(process.env['TACIT_STORM_KILLS'] ?? 3);
/** Sends one client has waiting at once: enough that a kill finds some unanswered. */
const WINDOW = 16;
/** Share of `sent` answers lost with their connection: a few per run, each a resend of a stored message. */
const LOSE_ANSWERS = 0.05;

function check(r: StormReport): void {
  console.log(`# ${stormLine(r)}`);
  assert.equal(r.failed, 0, 'no send refused');
  assert.equal(r.lost, 0, 'nothing acknowledged lost');
  assert.equal(r.shownTwice, 0, 'nothing shown twice');
  assert.equal(r.reordered, 0, 'order kept per sender');
  assert.ok(r.answersLost > 0, 'some answers were lost, so stored messages were resent');
  assert.equal(r.serverCopies, 0, 'no resend stored again');
}

test('storm: SQLite server killed with kill -9 while clients exchange messages: 0 lost, 0 shown twice, 0 reordered, resends stored once', async () => {
  check(await runStorm({ mode: 'single', clients: CLIENTS, messages: MESSAGES, kills: KILLS, window: WINDOW, loseAnswers: LOSE_ANSWERS }));
});

const withServices = await testWithServices('storm.test.ts (two nodes)');
after(dropSchemas);
withServices('storm: two nodes on PostgreSQL + Redis, one killed at a time, clients reconnect to the other: 0 lost, 0 shown twice, 0 reordered, resends stored once', async () => {
  check(
    await runStorm({
      mode: 'cluster',
      clients: CLIENTS,
      messages: MESSAGES,
      kills: 2,
      window: WINDOW,
      loseAnswers: LOSE_ANSWERS,
      cluster: { databaseUrl, redisUrl, schema: newSchema() },
    }),
  );
});
