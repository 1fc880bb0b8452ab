/**
 * The attachment routes of the wire contract (docs/API.md, "Attachments") over `fetch`, as a
 * device. Every JSON answer is validated; a refusal becomes ClientError('SERVER') with the
 * server's code; a dropped connection NETWORK; the caller's AbortSignal CANCELLED.
 */
import {
  ROUTES,
  ATTACHMENT_CONTENT_TYPE,
  UPLOAD_OFFSET_HEADER,
  authorizationHeader,
  object,
  string,
  validateAttachmentLimitsResponse,
  validateAttachmentUploadStatus,
  validateCreateAttachmentResponse,
  type AttachmentLimitsResponse,
  type AttachmentUploadStatus,
  type CreateAttachmentResponse,
  type DeviceCredentials,
  type Validator,
} from '@tacit/api';
import { ClientError } from '../errors.js';
import { normalizeServerUrl, readBounded, TooLarge } from '../http.js';
import { refusalText } from '../refusals.js';
import { ownValue } from '../record-codec.js';

/** Largest JSON answer read from an attachment route (they are a few dozen bytes). */
const MAX_JSON_BYTES = 16 * 1024;

/**
 * Deadline of one JSON request or one upload piece, ms. A piece is sized to take a few seconds
 * (upload.ts); the server cuts a request off after its own timeout (30 s by default).
 */
export const ATTACHMENT_REQUEST_TIMEOUT_MS = 60_000;

/** The part of `fetch` the attachment code uses (the global `fetch` fits). */
export type BlobFetch = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string | Uint8Array<ArrayBuffer>; signal?: AbortSignal },
) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  body: ReadableStream<Uint8Array> | null;
  text(): Promise<string>;
}>;

const errorBody = object({ error: object({ code: string({ min: 1, max: 64 }), message: string({ max: 1024 }) }) });

/** Refusals that mean something more specific for a file than refusals.ts says in general. */
const FILE_REFUSALS: Record<string, string> = {
  NOT_FOUND: 'the file is no longer on the server (it expired or was deleted)',
  UNAVAILABLE: 'the server does not take files right now (attachments may not be enabled on it)',
};

/** A response as far as its status and a bounded body. */
interface Answer {
  status: number;
  text: string;
}

export class AttachmentApi {
  readonly baseUrl: string;
  readonly #credentials: DeviceCredentials;
  readonly #fetch: BlobFetch;

  constructor(serverUrl: string, credentials: DeviceCredentials, fetchImpl?: BlobFetch) {
    this.baseUrl = normalizeServerUrl(serverUrl);
    this.#credentials = credentials;
    this.#fetch = fetchImpl ?? ((url, init) => fetch(url, init));
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: authorizationHeader(this.#credentials), ...extra };
  }

  /** One request under a deadline and the caller's signal; the answer's body is read, bounded. */
  async #request(
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: string | Uint8Array<ArrayBuffer>; signal?: AbortSignal; deadlineMs?: number },
  ): Promise<Answer> {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    init.signal?.addEventListener('abort', onAbort);
    const timer = setTimeout(() => controller.abort(), init.deadlineMs ?? ATTACHMENT_REQUEST_TIMEOUT_MS);
    try {
      if (init.signal?.aborted) throw new ClientError('CANCELLED', 'cancelled');
      const res = await this.#fetch(this.baseUrl + path, {
        method,
        headers: this.#headers(init.headers),
        ...(init.body !== undefined ? { body: init.body } : {}),
        signal: controller.signal,
      });
      return { status: res.status, text: await readBounded(res, MAX_JSON_BYTES) };
    } catch (e) {
      throw this.#failure(e, init.signal, controller.signal, method);
    } finally {
      clearTimeout(timer);
      init.signal?.removeEventListener('abort', onAbort);
    }
  }

  #failure(e: unknown, caller: AbortSignal | undefined, own: AbortSignal, method: string): ClientError {
    if (e instanceof ClientError) return e;
    if (caller?.aborted) return new ClientError('CANCELLED', 'cancelled');
    if (e instanceof TooLarge) return new ClientError('BAD_RESPONSE', 'the server answer is too large');
    if (own.aborted) return new ClientError('TIMEOUT', `the server did not answer ${method} /v1/attachments in time`);
    return new ClientError('NETWORK', `cannot reach the server at ${this.baseUrl}`);
  }

  #refusal(a: Answer, what: string): ClientError {
    let parsed: unknown;
    try {
      parsed = JSON.parse(a.text);
    } catch {
      parsed = undefined;
    }
    const e = errorBody(parsed);
    const code = e.ok ? e.value.error.code : 'UNKNOWN';
    const serverText = e.ok ? e.value.error.message : '';
    const sentence = ownValue(FILE_REFUSALS, code) ?? refusalText(code);
    // The server's own message may add a figure (the cap, the quota); it never carries user data.
    const detail = code === 'ATTACHMENT_TOO_LARGE' || code === 'QUOTA_EXCEEDED' ? ` (${serverText})` : '';
    return new ClientError('SERVER', `${what}: ${sentence}${detail}`, { serverCode: code, status: a.status });
  }

  #parse<T>(a: Answer, validator: Validator<T>, what: string): T {
    if (a.status < 200 || a.status >= 300) throw this.#refusal(a, what);
    let parsed: unknown;
    try {
      parsed = JSON.parse(a.text);
    } catch {
      parsed = undefined;
    }
    const r = validator(parsed);
    if (!r.ok) throw new ClientError('BAD_RESPONSE', `malformed server answer (${what}) at ${r.path}`);
    return r.value;
  }

  async limits(signal?: AbortSignal): Promise<AttachmentLimitsResponse> {
    return this.#parse(await this.#request('GET', ROUTES.attachments, { ...(signal ? { signal } : {}) }), validateAttachmentLimitsResponse, 'attachment limits');
  }

  async create(length: number, signal?: AbortSignal): Promise<CreateAttachmentResponse> {
    const a = await this.#request('POST', ROUTES.attachments, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ length }), ...(signal ? { signal } : {}) });
    return this.#parse(a, validateCreateAttachmentResponse, 'cannot upload the file');
  }

  async status(id: string, signal?: AbortSignal): Promise<AttachmentUploadStatus> {
    return this.#parse(await this.#request('GET', ROUTES.attachmentUpload(id), { ...(signal ? { signal } : {}) }), validateAttachmentUploadStatus, 'cannot resume the upload');
  }

  /** Sends one piece at `offset`; resolves to the upload's status after it. */
  async put(id: string, offset: number, piece: Uint8Array<ArrayBuffer>, signal?: AbortSignal): Promise<AttachmentUploadStatus> {
    const a = await this.#request('PATCH', ROUTES.attachment(id), {
      headers: { 'content-type': ATTACHMENT_CONTENT_TYPE, [UPLOAD_OFFSET_HEADER]: String(offset) },
      body: piece,
      ...(signal ? { signal } : {}),
    });
    return this.#parse(a, validateAttachmentUploadStatus, 'cannot upload the file');
  }

  async delete(id: string, signal?: AbortSignal): Promise<void> {
    const a = await this.#request('DELETE', ROUTES.attachment(id), { ...(signal ? { signal } : {}) });
    if (a.status !== 204 && a.status !== 404) throw this.#refusal(a, 'cannot delete the file');
  }

  /**
   * Starts a download from byte `start`; resolves once the headers arrived, with the blob's total
   * length and its body. `signal` aborts the transfer at any time (also mid-body).
   */
  async open(id: string, start: number, signal: AbortSignal): Promise<{ total: number; body: ReadableStream<Uint8Array> }> {
    let res: Awaited<ReturnType<BlobFetch>>;
    try {
      res = await this.#fetch(this.baseUrl + ROUTES.attachment(id), { method: 'GET', headers: this.#headers(start > 0 ? { range: `bytes=${start}-` } : {}), signal });
    } catch (e) {
      throw this.#failure(e, signal, signal, 'GET');
    }
    if (res.status !== 200 && res.status !== 206) {
      let text = '';
      try {
        text = await readBounded(res, MAX_JSON_BYTES);
      } catch {
        // The refusal's body is optional; its status is enough.
      }
      throw this.#refusal({ status: res.status, text }, 'cannot download the file');
    }
    const total = res.status === 200 ? Number(res.headers.get('content-length')) : Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1]);
    const rangeStart = res.status === 200 ? 0 : Number(/^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1]);
    if (!Number.isSafeInteger(total) || rangeStart !== start || res.body === null) {
      await res.body?.cancel().catch(() => undefined);
      throw new ClientError('BAD_RESPONSE', 'malformed server answer to a download');
    }
    return { total, body: res.body };
  }
}
