// The attachment pointer inside the envelope: round trip, strict decoding of every member
// (hostile sizes, names, types, base64), and the problem said in words, never a throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeAttachmentPointer,
  encodeEnvelope,
  readEnvelope,
  normalizeContentType,
  contentTypeFromName,
  MAX_POINTER_FILE_BYTES,
  MAX_THUMBNAIL_BYTES,
  type AttachmentPointer,
} from '../src/index.ts';
import { toBase64, utf8Encode } from '../src/bytes.ts';

const good = {
  id: 'ab'.repeat(24),
  key: toBase64(new Uint8Array(32).fill(1)),
  digest: toBase64(new Uint8Array(32).fill(2)),
  size: 1234,
  name: 'report.pdf',
  type: 'application/pdf',
};

function problem(v: unknown): string {
  const r = decodeAttachmentPointer(v);
  assert.equal(r.ok, false, `accepted ${JSON.stringify(v)}`);
  return r.ok ? '' : r.problem;
}

function envelopeBytes(file: unknown): Uint8Array {
  const json = utf8Encode(JSON.stringify({ v: 1, id: 'm1', text: '', sentAt: 1, file }));
  const padded = new Uint8Array(json.length + 160 - (json.length % 160));
  padded.set(json);
  padded[json.length] = 0x80;
  return padded;
}

test('a pointer goes through the envelope and comes back equal', () => {
  const file: AttachmentPointer = {
    id: good.id,
    key: new Uint8Array(32).fill(3),
    digest: new Uint8Array(32).fill(4),
    size: 20 * 1024 * 1024,
    name: 'photo.jpg',
    type: 'image/jpeg',
    thumbnail: new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 9, 9]),
    width: 4032,
    height: 3024,
  };
  const r = readEnvelope(encodeEnvelope({ v: 1, id: 'x1', text: 'the view', sentAt: 5, file }));
  assert.ok(r.ok);
  assert.equal(r.envelope.text, 'the view');
  assert.deepEqual(r.envelope.file, file);
  // A text message has no file, and an old envelope reads as before.
  const t = readEnvelope(encodeEnvelope({ v: 1, id: 'x2', text: 'hi', sentAt: 5 }));
  assert.ok(t.ok);
  assert.equal(t.envelope.file, undefined);
});

test('hostile members are refused with a reason; the envelope says BAD_ATTACHMENT', () => {
  assert.match(problem({ ...good, size: -1 }), /size/);
  assert.match(problem({ ...good, size: 1.5 }), /size/);
  assert.match(problem({ ...good, size: '12' }), /size/);
  assert.match(problem({ ...good, size: MAX_POINTER_FILE_BYTES + 1 }), /more than any file/);
  assert.match(problem({ ...good, size: 2 ** 60 }), /size|more than/);
  assert.match(problem({ ...good, name: '' }), /no file name/);
  assert.match(problem({ ...good, name: 'x'.repeat(256) }), /longer than 255/);
  assert.match(problem({ ...good, name: 'é'.repeat(128) }), /longer than 255/, 'counted in UTF-8 bytes');
  assert.match(problem({ ...good, name: 'a\ud800b' }), /not valid text/);
  assert.match(problem({ ...good, name: 42 }), /no file name/);
  assert.match(problem({ ...good, type: 'text/plain; charset=utf-8' }), /MIME/);
  assert.match(problem({ ...good, type: 'Image/PNG' }), /MIME/);
  assert.match(problem({ ...good, type: '../../etc' }), /MIME/);
  assert.match(problem({ ...good, type: `a/${'b'.repeat(300)}` }), /MIME/);
  assert.match(problem({ ...good, id: 'AB'.repeat(24) }), /blob id/);
  assert.match(problem({ ...good, id: '../x' }), /blob id/);
  assert.match(problem({ ...good, key: toBase64(new Uint8Array(31)) }), /key/);
  assert.match(problem({ ...good, key: 'not base64!' }), /key/);
  // Non-canonical base64 (bits set below the last byte) is not accepted either.
  assert.match(problem({ ...good, digest: good.digest.slice(0, -2) + 'B=' }), /digest/);
  assert.match(problem({ ...good, type: 'image/png', width: 10 }), /width without a height/);
  assert.match(problem({ ...good, type: 'image/png', width: 0, height: 5 }), /dimensions/);
  assert.match(problem({ ...good, type: 'image/png', width: 70_000, height: 5 }), /dimensions/);
  assert.match(problem({ ...good, width: 10, height: 10 }), /not an image/);
  assert.match(problem({ ...good, type: 'image/png', thumb: toBase64(new Uint8Array([1, 2, 3, 4])) }), /not a JPEG/);
  assert.match(problem({ ...good, type: 'image/png', thumb: toBase64(new Uint8Array(MAX_THUMBNAIL_BYTES + 1).fill(0xff)) }), /thumbnail/);
  assert.match(problem([good]), /not an object/);
  assert.match(problem(null), /not an object/);
  for (const bad of [{ ...good, size: -1 }, { ...good, key: 'x' }, 'file', 7]) {
    const r = readEnvelope(envelopeBytes(bad));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'BAD_ATTACHMENT');
  }
  // Unknown members are ignored (later versions may add some).
  assert.ok(decodeAttachmentPointer({ ...good, later: { x: 1 } }).ok);
});

test("a sender's hostile name is accepted only in its safe form", () => {
  for (const [raw, safe] of [
    ['../../.ssh/authorized_keys', '_.._.ssh_authorized_keys'],
    ['.bashrc', 'bashrc'],
    ['invoice\u202Efdp.exe', 'invoicefdp.exe'],
    ['a\u0000b\nc.txt', 'abc.txt'],
    ['C:\\Windows\\evil.dll', 'C__Windows_evil.dll'],
    ['...', 'attachment'],
  ] as const) {
    const r = decodeAttachmentPointer({ ...good, name: raw });
    assert.ok(r.ok, raw);
    assert.equal(r.pointer.name, safe, raw);
    assert.doesNotMatch(r.pointer.name, /[/\\\u0000-\u001f\u202a-\u202e]|^\./);
  }
});

test('senders normalize content types; the CLI guesses from the extension', () => {
  assert.equal(normalizeContentType('Text/Plain; charset=UTF-8'), 'text/plain');
  assert.equal(normalizeContentType(''), 'application/octet-stream');
  assert.equal(normalizeContentType(undefined), 'application/octet-stream');
  assert.equal(normalizeContentType('not a type'), 'application/octet-stream');
  assert.equal(contentTypeFromName('Shot.PNG'), 'image/png');
  assert.equal(contentTypeFromName('archive'), 'application/octet-stream');
  // An extension named like an Object.prototype member is no known type.
  assert.equal(contentTypeFromName('notes.constructor'), 'application/octet-stream');
});
