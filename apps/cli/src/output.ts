/**
 * Everything the CLI prints goes through here: human lines, or with --json one JSON object per
 * line on stdout (errors: one JSON object on stderr). Text from other people is sanitized before
 * it reaches a terminal: control characters (escape sequences) and bidi overrides could
 * otherwise rewrite the screen or disguise a sender.
 */
import { neutralizeControls } from '@tacit/client';

export interface Output {
  readonly json: boolean;
  /** An event for scripts (JSON mode) and its human rendering. */
  event(name: string, data: Record<string, unknown>, human: string | undefined): void;
  /** A notice for people only: stderr in human mode, an event line in JSON mode. */
  notice(name: string, data: Record<string, unknown>, human: string): void;
  /** `serverCode`: the server's refusal code, when the server refused (code SERVER). */
  error(data: { code: string; message: string; exit: number; serverCode?: string | undefined; contact?: string | undefined }): void;
  /**
   * Runs `fn` and writes everything it printed at once, one write per stream: a display of
   * several messages reaches the terminal or pipe in one system call.
   */
  batch(fn: () => void): void;
}

export interface Streams {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

export function makeOutput(json: boolean, streams: Streams, beforeWrite?: () => void, afterWrite?: () => void): Output {
  let held: Map<Streams['stdout'], string> | undefined;
  const write = (stream: Streams['stdout'], line: string): void => {
    if (held) {
      held.set(stream, (held.get(stream) ?? '') + line + '\n');
      return;
    }
    beforeWrite?.();
    stream.write(line + '\n');
    afterWrite?.();
  };
  return {
    batch(fn) {
      if (held) return fn();
      const mine = new Map<Streams['stdout'], string>();
      held = mine;
      try {
        fn();
      } finally {
        held = undefined;
      }
      if (mine.size === 0) return;
      beforeWrite?.();
      for (const [stream, text] of mine) stream.write(text);
      afterWrite?.();
    },
    json,
    event(name, data, human) {
      if (json) write(streams.stdout, JSON.stringify({ event: name, ...data }));
      else if (human !== undefined) write(streams.stdout, human);
    },
    notice(name, data, human) {
      if (json) write(streams.stdout, JSON.stringify({ event: name, ...data }));
      else write(streams.stderr, human);
    },
    error(data) {
      if (json) write(streams.stderr, JSON.stringify({ event: 'error', ...data }));
      else write(streams.stderr, `tacit: ${data.message}`);
    },
  };
}

/**
 * Makes someone else's text safe to print: no control characters or bidi overrides (the SDK's
 * neutralizeControls, which the web client uses too); newlines indented.
 */
export function sanitize(text: string): string {
  return neutralizeControls(text).replace(/\n/g, '\n    ');
}

export function formatTime(ms: number): string {
  const d = new Date(ms);
  if (!Number.isFinite(d.getTime())) return '????-??-?? ??:??';
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** 60 digits as 12 groups of 5, in 3 lines of 4 groups (as Signal shows them). */
export function formatSafetyNumber(digits: string): string {
  const groups = digits.match(/.{1,5}/g) ?? [];
  const lines: string[] = [];
  for (let i = 0; i < groups.length; i += 4) lines.push('  ' + groups.slice(i, i + 4).join(' '));
  return lines.join('\n');
}
