// Route parsing accepts only valid usernames and never throws.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { href, parseRoute } from '../src/ui/route.ts';

describe('routes', () => {
  it('parses conversation and safety routes and folds case', () => {
    assert.deepEqual(parseRoute('#/c/Bob'), { view: 'chat', contact: 'bob' });
    assert.deepEqual(parseRoute('#/c/bob/safety'), { view: 'safety', contact: 'bob' });
    assert.deepEqual(parseRoute('#/admin'), { view: 'admin' });
    assert.equal(href({ view: 'admin' }), '#/admin');
    assert.deepEqual(parseRoute(href({ view: 'safety', contact: 'a_b-c' })), { view: 'safety', contact: 'a_b-c' });
  });

  it('treats anything else as the list, never throwing', () => {
    for (const h of ['', '#', '#/', '#/c/', '#/c/%E0%A4%A', '#/c/<x>', '#/c/1abc', `#/c/${'a'.repeat(65)}`, '#/c/bob/safety/x']) {
      assert.deepEqual(parseRoute(h), { view: 'list' }, h);
    }
    fc.assert(fc.property(fc.string({ maxLength: 100 }), (s) => void parseRoute(s)));
  });
});
