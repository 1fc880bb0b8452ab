/**
 * Attachment routes: reserve a blob with its declared length, upload it in pieces (resumable:
 * ask where it stands, continue from there), download it with byte ranges, delete it. Every
 * route needs a registered device (the usual `Authorization` header); ids are 192 random bits,
 * so holding one is what lets a device download a blob. The server never sees a file name, a
 * type or a key: the blob is ciphertext, and its pointer travels inside an end-to-end encrypted
 * message.
 *
 * Bodies stream straight to the blob store and blobs straight to the response, so memory stays
 * flat whatever the size. An upload piece must arrive within the HTTP request timeout
 * (TACIT_HTTP_REQUEST_TIMEOUT_MS where set): the SDK sends pieces small enough for its link, and
 * a piece cut off keeps what arrived.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ATTACHMENT_CONTENT_TYPE,
  ATTACHMENT_ID_BYTES,
  UPLOAD_OFFSET_HEADER,
  attachmentBlobLength,
  attachmentId,
  parseUploadOffset,
  validateCreateAttachmentRequest,
  type AttachmentLimitsResponse,
  type AttachmentUploadStatus,
  type CreateAttachmentResponse,
} from '@tacit/api';
import { authenticateHeader } from '../auth.js';
import type { Context } from '../context.js';
import { errorBody, errorSummary, ServerError } from '../errors.js';
import { parse } from '../http.js';
import type { Address } from '../store.js';
import type { BlobInfo, BlobStore } from './blob-store.js';

export const ATTACHMENT_ROUTES = {
  collection: '/v1/attachments',
  blob: '/v1/attachments/:id',
  upload: '/v1/attachments/:id/upload',
} as const;

/** What the server needs besides the routes: the expiry sweep and shutdown. */
export interface AttachmentService {
  /** Deletes expired blobs (the server's periodic sweep); returns how many. */
  sweep(now: number): Promise<number>;
  /** Ends uploads in progress (their bytes so far are kept); the server closes the store after HTTP. */
  close(): Promise<void>;
}

/** An upload request in progress: a newer request for the same blob ends it and waits for it. */
interface InFlight {
  request: FastifyRequest;
  done: Promise<void>;
}

/** A `Range: bytes=…` header for a blob of `length` bytes: [start, end), 'unsatisfiable', or undefined (serve it all). */
export function parseRange(header: string | undefined, length: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/.exec(header.trim());
  // Several ranges, other units, or nonsense: a server may ignore Range and send everything.
  if (m === null || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, length - suffix), end: length };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? Infinity : Number(m[2]);
  if (last < start) return undefined;
  if (start >= length) return 'unsatisfiable';
  return { start, end: Math.min(last, length - 1) + 1 };
}

export function registerAttachmentRoutes(app: FastifyInstance, ctx: Context, blobs: BlobStore | undefined): AttachmentService {
  const createLimit = ctx.limiters.bucket('attachment-create', { burst: ctx.limits.attachmentCreateBurst, perSecond: ctx.limits.attachmentCreatePerHour / 3600 });
  const requestLimit = ctx.limiters.bucket('attachment-request', { burst: ctx.limits.attachmentRequestBurst, perSecond: ctx.limits.attachmentRequestsPerSecond });
  const maxBlobBytes = attachmentBlobLength(ctx.limits.maxAttachmentBytes);
  const inFlight = new Map<string, InFlight>();

  const store = (): BlobStore => {
    if (blobs === undefined) throw new ServerError('UNAVAILABLE', 'attachments are not enabled on this server');
    return blobs;
  };
  const device = async (req: FastifyRequest, limit = requestLimit): Promise<Address> => {
    const me = await authenticateHeader(ctx, req);
    if (!(await limit.take(`${me.username}.${me.deviceId}`, ctx.now()))) throw new ServerError('RATE_LIMITED', 'too many attachment requests from this device');
    return me;
  };
  const paramId = (req: FastifyRequest): string => parse(attachmentId, (req.params as Record<string, unknown>)['id']);
  /** The blob, if it exists, is unexpired, and (with `owner`) belongs to that account; else NOT_FOUND. */
  const blob = async (id: string, owner?: string): Promise<BlobInfo> => {
    const b = await store().get(id, ctx.now());
    if (b === undefined || (owner !== undefined && b.owner !== owner)) throw new ServerError('NOT_FOUND', 'no such attachment (it may have expired or been deleted)');
    return b;
  };
  const status = (b: BlobInfo): AttachmentUploadStatus => ({ length: b.length, received: b.received, expiresAt: b.expiresAt });
  /**
   * Ends the upload request in progress for `id`, if any, and waits until its bytes are stored;
   * with `request`, registers it as the one in progress (in the same turn as the last check, so
   * two newcomers cannot both pass). Returns the function that unregisters it.
   */
  const takeOver = async (id: string, request?: FastifyRequest): Promise<() => void> => {
    for (let f = inFlight.get(id); f !== undefined; f = inFlight.get(id)) {
      f.request.raw.destroy();
      await f.done;
    }
    if (request === undefined) return () => undefined;
    let finish!: () => void;
    const entry: InFlight = { request, done: new Promise<void>((resolve) => (finish = resolve)) };
    inFlight.set(id, entry);
    return () => {
      if (inFlight.get(id) === entry) inFlight.delete(id);
      finish();
    };
  };

  app.get(ATTACHMENT_ROUTES.collection, async (req) => {
    const me = await device(req);
    const res: AttachmentLimitsResponse = {
      maxBytes: ctx.limits.maxAttachmentBytes,
      quotaBytes: ctx.limits.attachmentQuotaBytes,
      usedBytes: await store().usage(me.username, ctx.now()),
      ttlMs: ctx.limits.attachmentTtlMs,
    };
    return res;
  });

  app.post(ATTACHMENT_ROUTES.collection, async (req, reply) => {
    const me = await device(req, createLimit);
    const body = parse(validateCreateAttachmentRequest, req.body);
    if (body.length > maxBlobBytes) {
      throw new ServerError('ATTACHMENT_TOO_LARGE', `this server accepts files up to ${ctx.limits.maxAttachmentBytes} bytes (a blob of at most ${maxBlobBytes} bytes)`);
    }
    const now = ctx.now();
    const id = randomBytes(ATTACHMENT_ID_BYTES).toString('hex');
    const expiresAt = now + ctx.limits.attachmentUploadTtlMs;
    const r = await store().create({ id, owner: me.username, length: body.length, createdAt: now, expiresAt }, ctx.limits.attachmentQuotaBytes, now);
    if (r === 'QUOTA_EXCEEDED') throw new ServerError('QUOTA_EXCEEDED', `an account may hold ${ctx.limits.attachmentQuotaBytes} bytes of attachments at once`);
    const res: CreateAttachmentResponse = { id, expiresAt };
    return reply.code(201).send(res);
  });

  app.get(ATTACHMENT_ROUTES.upload, async (req) => {
    const me = await device(req);
    return status(await blob(paramId(req), me.username));
  });

  app.delete(ATTACHMENT_ROUTES.blob, async (req, reply) => {
    const me = await device(req);
    const id = paramId(req);
    await blob(id, me.username);
    await takeOver(id);
    await store().delete(id);
    return reply.code(204).send();
  });

  const download = async (req: FastifyRequest, reply: FastifyReply) => {
    await device(req);
    const b = await blob(paramId(req));
    if (b.received < b.length) throw new ServerError('NOT_FOUND', 'the attachment is not completely uploaded');
    const range = parseRange(req.headers.range, b.length);
    if (range === 'unsatisfiable') {
      return reply.code(416).header('content-range', `bytes */${b.length}`).send(errorBody('RANGE_NOT_SATISFIABLE', 'the range is outside the attachment'));
    }
    const { start, end } = range ?? { start: 0, end: b.length };
    reply
      .code(range === undefined ? 200 : 206)
      .header('content-type', ATTACHMENT_CONTENT_TYPE)
      .header('content-length', String(end - start))
      .header('accept-ranges', 'bytes')
      // Ciphertext for one conversation: no shared cache should keep it.
      .header('cache-control', 'private, no-store');
    if (range !== undefined) reply.header('content-range', `bytes ${start}-${end - 1}/${b.length}`);
    if (req.method === 'HEAD') return reply.send();
    const body = Readable.from(store().read(b.id, start, end), { objectMode: false });
    body.on('error', (e) => req.log.warn({ err: errorSummary(e) }, 'attachment download ended early'));
    return reply.send(body);
  };
  // HEAD answers the headers without reading the blob (Fastify's own HEAD would read it whole).
  app.get(ATTACHMENT_ROUTES.blob, { exposeHeadRoute: false }, download);
  app.head(ATTACHMENT_ROUTES.blob, download);

  // Upload pieces: raw bytes, read from the request as they arrive (never buffered whole).
  void app.register(async (scope) => {
    scope.addContentTypeParser(ATTACHMENT_CONTENT_TYPE, (_req, _payload, done) => done(null, undefined));
    scope.patch(ATTACHMENT_ROUTES.blob, async (req: FastifyRequest, reply: FastifyReply) => {
      const me = await device(req);
      const id = paramId(req);
      const offset = parseUploadOffset(req.headers[UPLOAD_OFFSET_HEADER] as string | undefined);
      if (offset === undefined) throw new ServerError('INVALID_REQUEST', `${UPLOAD_OFFSET_HEADER}: expected a byte offset`);
      const declared = req.headers['content-length'] === undefined ? NaN : Number(req.headers['content-length']);
      if (!Number.isSafeInteger(declared)) throw new ServerError('INVALID_REQUEST', 'content-length: required for an upload piece');
      const b = await blob(id, me.username);
      if (offset + declared > b.length) throw new ServerError('PAYLOAD_TOO_LARGE', `the piece ends past the attachment's ${b.length} bytes`);
      const release = await takeOver(id, req);
      try {
        const r = await store().append(id, offset, req.raw, { completedExpiresAt: ctx.now() + ctx.limits.attachmentTtlMs, now: ctx.now() });
        if (!r.ok && r.code === 'NOT_FOUND') throw new ServerError('NOT_FOUND', 'no such attachment (it may have expired or been deleted)');
        if (!r.ok) throw new ServerError('OFFSET_MISMATCH', `the attachment has ${r.received} bytes; continue from there`);
        return status(await blob(id));
      } catch (e) {
        // The client went away or was replaced by a newer request: what arrived is stored.
        if (req.raw.destroyed || reply.raw.destroyed) return reply;
        throw e;
      } finally {
        release();
      }
    });
  });

  return {
    sweep: (now) => (blobs === undefined ? Promise.resolve(0) : blobs.expire(now)),
    async close() {
      for (const f of inFlight.values()) f.request.raw.destroy();
      await Promise.all([...inFlight.values()].map((f) => f.done));
    },
  };
}
