import { ApiError, type ErrorBody, type ErrorCode } from '@tacit/api';

/**
 * The server's error: a code from the api table and a message safe to show and to log
 * (lengths and field paths only; never keys, secrets, tokens or message bodies). The api's
 * error class already carries the code and its HTTP status and close code.
 */
export class ServerError extends ApiError {
  constructor(code: ErrorCode, message: string = code) {
    super(code, message);
    this.name = 'ServerError';
  }
}

export function isServerError(e: unknown): e is ServerError {
  return e instanceof ServerError;
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** What may be logged of an error: its name and code, never a message that could echo input. */
export function errorSummary(e: unknown): { name: string; code?: string } {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? { name: e.name, code } : { name: e.name };
  }
  return { name: typeof e };
}
