import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CODES } from '@tacit/api';
import { REFUSALS, refusalText } from '../src/index.ts';

test('every server refusal code has a clause a person understands; unknown codes are named', () => {
  assert.deepEqual(Object.keys(REFUSALS).sort(), [...ERROR_CODES].sort());
  for (const code of ERROR_CODES) {
    const text = refusalText(code);
    assert.match(text, /^[a-z][^]*[^.]$/, code);
    assert.ok(!text.includes(code), `${code}: the clause explains rather than repeats the code`);
    assert.ok(text.split(' ').length >= 5, code);
  }
  assert.equal(refusalText('SOMETHING_NEW'), 'the server refused the request (SOMETHING_NEW)');
  assert.equal(refusalText(undefined), 'the server refused the request (no reason given)');
});
