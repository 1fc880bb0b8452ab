/**
 * Worker thread owning the message-batch connection (see sqlite-batch.ts). Requests are handled
 * one at a time, in order; each reply is sent after its transaction is durable.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { BUSY_RETRIES, MessageBatchWriter } from './sqlite-batch.js';
import { checkpointWal, configureConnection } from './sqlite-connection.js';
import type { NewFanout } from './fanout.js';
import type { Address, NewMessage } from './store.js';

export type WorkerRequest =
  | { op: 'write'; seq: number; messages: NewMessage[]; acks: { to: Address; id: number }[]; maxQueue: number; announce: boolean }
  | { op: 'fanout'; seq: number; fanout: NewFanout; maxQueue: number }
  | { op: 'invalidate' }
  | { op: 'checkpoint'; seq: number }
  | { op: 'close'; seq: number };

/**
 * `assigned` (only when the request asked to `announce`) comes before the final reply of a write:
 * the results once the inserts are done, while the commit and its fsync are still running.
 */
export type WorkerReply =
  | { seq: number; ok: true; results?: unknown; assigned?: false }
  | { seq: number; ok: true; results: unknown; assigned: true }
  | { seq: number; ok: false; error: { name: string; code?: string } };

const { path, synchronous } = workerData as { path: string; synchronous: 'FULL' | 'NORMAL' };
const db = new Database(path);
configureConnection(db, synchronous === 'NORMAL' ? 'NORMAL' : 'FULL');
const writer = new MessageBatchWriter(db);

function writeRetrying<T>(write: () => T): T {
  for (let attempt = 0; ; attempt++) {
    try {
      return write();
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
    if (req.op === 'checkpoint') {
      checkpointWal(db);
      parentPort!.postMessage({ seq: req.seq, ok: true } satisfies WorkerReply);
      return;
    }
    const seq = req.seq;
    const announce = req.op === 'write' && req.announce ? (results: unknown) => parentPort!.postMessage({ seq, ok: true, results, assigned: true } satisfies WorkerReply) : undefined;
    const results =
      req.op === 'fanout'
        ? writeRetrying(() => writer.writeFanout(req.fanout, req.maxQueue))
        : writeRetrying(() => writer.write(req.messages, req.acks, req.maxQueue, announce));
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
