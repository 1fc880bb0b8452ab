/**
 * Files in the browser: sending (a File from the attach button, a drop or a paste; images get a
 * small JPEG thumbnail and their size), upload progress and cancel, and received files as object
 * URLs made from the decrypted, verified bytes (the SDK makes the Blob only once every chunk and
 * the digest checked out). Images of the types in INLINE_IMAGE_TYPES are shown inline (never SVG:
 * it can carry script); everything else is a download under its (safe) name. The page's CSP
 * allows `blob:` images and nothing broader for this.
 */
import { blobSource, INLINE_IMAGE_TYPES, isClientError, MAX_THUMBNAIL_BYTES, refusalText, type TacitClient } from '@tacit/client';

/** Longest side of a thumbnail, in pixels. */
export const THUMBNAIL_SIDE = 160;
/** Images larger than this are not fetched on their own to be shown inline: the user clicks. */
export const MAX_AUTO_IMAGE_BYTES = 25 * 1024 * 1024;
/** Object URLs kept at once (each holds a decrypted file in memory); the oldest are revoked past it. */
export const MAX_OBJECT_URLS = 64;
/** Progress is redrawn at most this often, per cent steps. */
const PROGRESS_STEP = 0.01;

const key = (contact: string, seq: number): string => `${contact}#${seq}`;

function describe(e: unknown): string {
  if (isClientError(e)) {
    if (e.code === 'SERVER') return sentence(refusalText(e.serverCode));
    if (e.code === 'ATTACHMENT_CORRUPT') return 'The file does not check out (it was changed or damaged on the way); nothing of it was kept.';
    return sentence(e.message);
  }
  return 'Something went wrong. Try again.';
}

function sentence(clause: string): string {
  const s = clause.charAt(0).toUpperCase() + clause.slice(1);
  return s.endsWith('.') ? s : `${s}.`;
}

/** A JPEG thumbnail (at most MAX_THUMBNAIL_BYTES) and the image's size, or nothing when the browser cannot decode it. */
async function thumbnailOf(file: File): Promise<{ thumbnail?: Uint8Array; width?: number; height?: number }> {
  if (!INLINE_IMAGE_TYPES.has(file.type) || typeof createImageBitmap !== 'function') return {};
  try {
    const bitmap = await createImageBitmap(file);
    const { width, height } = bitmap;
    const scale = Math.min(1, THUMBNAIL_SIDE / Math.max(width, height));
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    canvas.getContext('2d')?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    for (const quality of [0.7, 0.5, 0.3]) {
      const blob = await new Promise<Blob | null>((r) => canvas.toBlob(r, 'image/jpeg', quality));
      if (blob !== null && blob.size <= MAX_THUMBNAIL_BYTES) return { thumbnail: new Uint8Array(await blob.arrayBuffer()), width, height };
    }
    return { width, height };
  } catch {
    return {};
  }
}

export class FilesModel {
  readonly #client: TacitClient;
  readonly #changed: () => void;
  /** Uploads in progress: fraction done. */
  readonly #progress = new Map<string, number>();
  readonly #urls = new Map<string, string>();
  readonly #loading = new Set<string>();
  readonly #errors = new Map<string, string>();

  constructor(client: TacitClient, changed: () => void) {
    this.#client = client;
    this.#changed = changed;
  }

  /** Fraction of the upload done, while this page uploads the message's file. */
  progress(contact: string, seq: number): number | undefined {
    return this.#progress.get(key(contact, seq));
  }

  /** Why the last download of the message's file failed, if it did. */
  error(contact: string, seq: number): string | undefined {
    return this.#errors.get(key(contact, seq));
  }

  #track(contact: string) {
    let k: string | undefined;
    return {
      onStarted: (m: { seq: number }) => {
        k = key(contact, m.seq);
        this.#progress.set(k, 0);
        this.#changed();
      },
      onProgress: (sent: number, total: number) => {
        if (k === undefined) return;
        const f = total === 0 ? 1 : sent / total;
        if (f - (this.#progress.get(k) ?? 0) < PROGRESS_STEP && f < 1) return;
        this.#progress.set(k, f);
        this.#changed();
      },
      done: () => {
        if (k !== undefined) this.#progress.delete(k);
        this.#changed();
      },
    };
  }

  /** Sends `file`; its message shows at once (uploading, with progress). Failures stay on the message (retry). */
  async send(contact: string, file: File, caption = ''): Promise<void> {
    const t = this.#track(contact);
    try {
      const extra = await thumbnailOf(file);
      await this.#client.sendFile(contact, blobSource(file), { name: file.name || 'pasted', type: file.type, ...(caption !== '' ? { caption } : {}), ...extra, onStarted: t.onStarted, onProgress: t.onProgress });
    } catch {
      // Shown on the message (failed, with Retry).
    } finally {
      t.done();
    }
  }

  /** Continues a failed upload (the page still holds the file), or resends a failed message. */
  async retry(contact: string, seq: number): Promise<void> {
    const t = this.#track(contact);
    t.onStarted({ seq });
    try {
      await this.#client.retry(contact, seq, undefined, { onProgress: t.onProgress });
    } catch {
      // Shown on the message.
    } finally {
      t.done();
    }
  }

  cancel(contact: string, seq: number): void {
    void this.#client.cancelUpload(contact, seq);
  }

  /** The object URL of the message's verified file, once fetched; `load` starts fetching. */
  url(contact: string, seq: number): string | undefined {
    return this.#urls.get(key(contact, seq));
  }

  isLoading(contact: string, seq: number): boolean {
    return this.#loading.has(key(contact, seq));
  }

  /** Whether an image is fetched on its own to be shown inline. */
  autoLoads(type: string, size: number): boolean {
    return INLINE_IMAGE_TYPES.has(type) && size <= MAX_AUTO_IMAGE_BYTES;
  }

  /** Fetches, checks and decrypts the file into an object URL (once). */
  async load(contact: string, seq: number): Promise<string | undefined> {
    const k = key(contact, seq);
    const have = this.#urls.get(k);
    if (have !== undefined || this.#loading.has(k)) return have;
    this.#loading.add(k);
    this.#errors.delete(k);
    this.#changed();
    try {
      const blob = await this.#client.attachmentBlob(contact, seq);
      const url = URL.createObjectURL(blob);
      this.#urls.set(k, url);
      while (this.#urls.size > MAX_OBJECT_URLS) {
        const [oldest, u] = this.#urls.entries().next().value as [string, string];
        URL.revokeObjectURL(u);
        this.#urls.delete(oldest);
      }
      return url;
    } catch (e) {
      this.#errors.set(k, describe(e));
      return undefined;
    } finally {
      this.#loading.delete(k);
      this.#changed();
    }
  }

  /** Downloads the file and hands it to the browser under `name` (already made safe by the SDK). */
  async save(contact: string, seq: number, name: string): Promise<void> {
    const url = await this.load(contact, seq);
    if (url === undefined) return;
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.rel = 'noopener';
    document.body.append(a);
    a.click();
    a.remove();
  }

  close(): void {
    for (const u of this.#urls.values()) URL.revokeObjectURL(u);
    this.#urls.clear();
  }
}
