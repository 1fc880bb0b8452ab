// The web journal's decoder is total, and route parsing accepts only valid usernames.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Journal, MAX_OUTGOING_PER_CONTACT, decodeJournal, emptyJournal, encodeJournal, type JournalData } from '../src/journal.ts';
import { href, parseRoute } from '../src/ui/route.ts';

class MemVault {
  bytes: Uint8Array | undefined;
  writes = 0;
  async read() {
    return this.bytes;
  }
  async write(b: Uint8Array) {
    this.bytes = b.slice();
    this.writes++;
  }
}

describe('journal', () => {
  it('round-trips', () => {
    const j: JournalData = {
      v: 1,
      conversations: { bob: { startedAt: 5 } },
      outgoing: { bob: [{ localId: 'a1', text: 'hi <b>', at: 7, state: 'failed', error: 'nope' }] },
    };
    assert.deepEqual(decodeJournal(encodeJournal(j)), j);
  });

  it('decodes any bytes without throwing', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        const j = decodeJournal(b);
        assert.equal(j.v, 1);
      }),
    );
  });

  it('drops malformed entries and keeps the good ones', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const doc = { v: 1, conversations: { x: v, y: { startedAt: 1 } }, outgoing: { y: [v, { localId: 'k', text: 't', at: 1, state: 'sent' }] } };
        const j = decodeJournal(new TextEncoder().encode(JSON.stringify(doc)));
        assert.deepEqual(j.conversations['y'], { startedAt: 1 });
        assert.ok(j.outgoing['y']!.some((m) => m.localId === 'k'));
        for (const m of j.outgoing['y']!) assert.ok(['sending', 'sent', 'failed', 'unconfirmed'].includes(m.state));
      }),
    );
    assert.deepEqual(decodeJournal(new TextEncoder().encode('{"v":2}')), emptyJournal());
    const proto = decodeJournal(new TextEncoder().encode('{"v":1,"conversations":{"__proto__":{"startedAt":1},"Bad Name":{"startedAt":1}},"outgoing":{"__proto__":[]}}'));
    assert.deepEqual(Object.keys(proto.conversations), []);
    assert.equal(Object.getPrototypeOf(proto.conversations), Object.prototype);
  });

  it('saves coalesced snapshots and caps the sent list', async () => {
    const vault = new MemVault();
    const j = await Journal.load(vault);
    for (let i = 0; i < MAX_OUTGOING_PER_CONTACT + 5; i++) j.addOutgoing('bob', { localId: `m${i}`, text: String(i), at: i, state: 'sent' });
    await Promise.all([j.save(), j.save(), j.save()]);
    assert.ok(vault.writes >= 1 && vault.writes <= 3);
    const back = await Journal.load(vault);
    assert.equal(back.outgoing('bob').length, MAX_OUTGOING_PER_CONTACT);
    assert.equal(back.outgoing('bob')[0]!.localId, 'm5');
  });
});

describe('routes', () => {
  it('parses conversation and safety routes and folds case', () => {
    assert.deepEqual(parseRoute('#/c/Bob'), { view: 'chat', contact: 'bob' });
    assert.deepEqual(parseRoute('#/c/bob/safety'), { view: 'safety', contact: 'bob' });
    assert.deepEqual(parseRoute(href({ view: 'safety', contact: 'a_b-c' })), { view: 'safety', contact: 'a_b-c' });
  });

  it('treats anything else as the list, never throwing', () => {
    for (const h of ['', '#', '#/', '#/c/', '#/c/%E0%A4%A', '#/c/<x>', '#/c/1abc', `#/c/${'a'.repeat(65)}`, '#/c/bob/safety/x']) {
      assert.deepEqual(parseRoute(h), { view: 'list' }, h);
    }
    fc.assert(fc.property(fc.string({ maxLength: 100 }), (s) => void parseRoute(s)));
  });
});
