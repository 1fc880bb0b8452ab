/**
 * Worker thread owning the message-batch connection (see sqlite-batch.ts). Requests are handled
 * one at a time, in order; each reply is sent after its transaction is durable.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { MessageBatchWriter } from './sqlite-batch.js';
import type { Address, NewMessage } from './store.js';

export type WorkerRequest =
  | { op: 'write'; seq: number; messages: NewMessage[]; acks: { to: Address; id: number }[]; maxQueue: number }
  | { op: 'invalidate' }
  | { op: 'close'; seq: number };

export type WorkerReply = { seq: number; ok: true; results?: unknown } | { seq: number; ok: false; error: { name: string; code?: string } };

const { path, synchronous } = workerData as { path: string; synchronous: 'FULL' | 'NORMAL' };
const db = new Database(path);
db.pragma('journal_mode = WAL');
db.pragma(`synchronous = ${synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
db.pragma('busy_timeout = 5000');
const writer = new MessageBatchWriter(db);

/**
 * Another connection (the main thread's, or the invite command's) may hold the write lock past
 * busy_timeout when the disk is slow. Nothing was written then, so the batch is simply retried
 * rather than refused.
 */
const BUSY_RETRIES = 5;
function writeRetrying(messages: NewMessage[], acks: { to: Address; id: number }[], maxQueue: number) {
  for (let attempt = 0; ; attempt++) {
    try {
      return writer.write(messages, acks, maxQueue);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (attempt >= BUSY_RETRIES || (code !== 'SQLITE_BUSY' && code !== 'SQLITE_BUSY_SNAPSHOT')) throw e;
    }
  }
}

parentPort!.on('message', (req: WorkerRequest) => {
  if (req.op === 'invalidate') return writer.invalidate();
  if (req.op === 'close') {
    db.close();
    parentPort!.postMessage({ seq: req.seq, ok: true } satisfies WorkerReply);
    return;
  }
  try {
    const results = writeRetrying(req.messages, req.acks, req.maxQueue);
    parentPort!.postMessage({ seq: req.seq, ok: true, results } satisfies WorkerReply);
  } catch (e) {
    if (process.env['TACIT_DEBUG_WORKER']) console.error(e);
    const code = (e as { code?: unknown }).code;
    parentPort!.postMessage({
      seq: req.seq,
      ok: false,
      error: { name: e instanceof Error ? e.name : 'Error', ...(typeof code === 'string' ? { code } : {}) },
    } satisfies WorkerReply);
  }
});
