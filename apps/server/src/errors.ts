import { ERRORS, type ErrorBody, type ErrorCode } from '@tacit/api';

/**
 * The server's error: a code from the api table and a message safe to show and to log
 * (lengths and field paths only; never keys, secrets, tokens or message bodies).
 */
export class ServerError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string = code) {
    super(message);
    this.name = 'ServerError';
    this.code = code;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
}

export function isServerError(e: unknown): e is ServerError {
  return e instanceof ServerError;
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}
