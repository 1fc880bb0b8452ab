// A benchmark's child processes (servers, load generators): one request/answer over IPC, and the
// CPU time a process has used, from /proc (Linux).
import { readdirSync, readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';

/**
 * Sends `msg` (unless empty) and resolves with the first answer `pick` accepts; rejects on an
 * `{ev: 'error'}` answer.
 */
export function request<T>(c: ChildProcess, msg: object, pick: (m: Record<string, unknown>) => T | undefined): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const on = (m: Record<string, unknown>) => {
      if (m['ev'] === 'error') {
        c.off('message', on);
        reject(new Error(String(m['message'])));
        return;
      }
      const v = pick(m);
      if (v !== undefined) {
        c.off('message', on);
        resolvePromise(v);
      }
    };
    c.on('message', on);
    if (Object.keys(msg).length > 0) c.send(msg);
  });
}

/** /proc/<pid>/stat's fields after the command name. */
function statFields(pid: number): string[] | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return f.slice(f.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far; NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f === undefined ? NaN : (Number(f[11]) + Number(f[12])) / 100;
}

/** Of those, seconds in the kernel; NaN if it is gone. */
export function kernelSeconds(pid: number): number {
  const f = statFields(pid);
  return f === undefined ? NaN : Number(f[12]) / 100;
}

/** CPU seconds (user + system) of each thread of a process so far, by thread id (the main thread's is the pid). */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), (Number(v[11]) + Number(v[12])) / 100);
    } catch {
      // The thread ended.
    }
  }
  return out;
}
