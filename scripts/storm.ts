// `npm run storm`: the storm at full size (issues 13 "Faults" and 17; apps/server/test/storm.ts
// says what is measured). 10 SDK clients exchange 10,000 messages while the server is killed with
// kill -9 several times: first one server on SQLite, then two nodes on PostgreSQL + Redis where one
// node is killed at a time and clients reconnect to the other. Prints one line of figures per case;
// exits 1 if anything was lost, shown twice, reordered or refused, or a resend was stored again.
//
// TACIT_STORM_CLIENTS (10), TACIT_STORM_MESSAGES (10000), TACIT_STORM_KILLS (5) size it;
// TACIT_STORM_MODES (single,cluster) picks the cases. The cluster case needs PostgreSQL and Redis
// (127.0.0.1:5432 database `test`, 127.0.0.1:6379, or TACIT_TEST_PG_* / TACIT_TEST_REDIS_URL); it
// is left out, with a line saying so, when they do not answer.
import { runStorm, stormLine, type StormReport } from '../apps/server/test/storm.ts';
import { databaseUrl, dropSchemas, newSchema, redisUrl } from '../apps/server/test/postgres-env.ts';
import { externalServices } from '../apps/server/test/services.ts';

const clients = Number(process.env['TACIT_STORM_CLIENTS'] ?? 10);
const messages = Number(process.env['TACIT_STORM_MESSAGES'] ?? 10_000);
const kills = Number(process.env['TACIT_STORM_KILLS'] ?? 5);
const modes = (process.env['TACIT_STORM_MODES'] ?? 'single,cluster').split(',');
/** Sends one client has waiting for the server at once. */
const WINDOW = 32;
/** Share of `sent` answers cut off with their connection (each makes a resend of a stored message). */
const LOSE_ANSWERS = 0.002;
if (![clients, messages, kills].every((n) => Number.isSafeInteger(n) && n > 0) || clients < 2) {
  console.error('TACIT_STORM_CLIENTS (at least 2), TACIT_STORM_MESSAGES and TACIT_STORM_KILLS must be positive integers');
  process.exit(2);
}

const log = (line: string) => console.log(line);
const reports: StormReport[] = [];
if (modes.includes('single')) {
  console.log(`storm: one server on SQLite, ${clients} clients, ${messages} messages, ${kills} x kill -9`);
  reports.push(await runStorm({ mode: 'single', clients, messages, kills, window: WINDOW, loseAnswers: LOSE_ANSWERS, log }));
  console.log(stormLine(reports[reports.length - 1]!));
}
if (modes.includes('cluster')) {
  const services = await externalServices();
  if (services.skip) console.log(`storm (cluster): left out: ${services.reason}`);
  else {
    console.log(`storm: two nodes on PostgreSQL + Redis, ${clients} clients, ${messages} messages, ${kills} x kill -9 (one node at a time)`);
    try {
      reports.push(await runStorm({ mode: 'cluster', clients, messages, kills, window: WINDOW, loseAnswers: LOSE_ANSWERS, cluster: { databaseUrl, redisUrl, schema: newSchema() }, log }));
      console.log(stormLine(reports[reports.length - 1]!));
    } finally {
      await dropSchemas();
    }
  }
}
const bad = reports.filter((r) => r.lost + r.shownTwice + r.reordered + r.failed + r.serverCopies > 0);
process.exit(bad.length > 0 ? 1 : 0);
