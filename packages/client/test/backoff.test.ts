import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { backoffDelay, DEFAULT_BACKOFF } from '../src/index.ts';

test('the delay ceiling doubles per attempt up to the cap', () => {
  const top = (attempt: number): number => backoffDelay(attempt, { baseMs: 100, maxMs: 5_000 }, () => 0.999999);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 10].map(top), [99, 199, 399, 799, 1599, 3199, 4999, 4999]);
});

test('full jitter: the delay spans [0, ceiling)', () => {
  assert.equal(backoffDelay(3, { baseMs: 100, maxMs: 5_000 }, () => 0), 0);
  assert.equal(backoffDelay(3, { baseMs: 100, maxMs: 5_000 }, () => 0.5), 400);
});

test('any attempt and any random value give a delay within [0, maxMs]', () => {
  fc.assert(
    fc.property(fc.integer({ min: -10, max: 1_000_000 }), fc.double({ noNaN: false }), (attempt, r) => {
      const d = backoffDelay(attempt, DEFAULT_BACKOFF, () => r);
      return Number.isInteger(d) && d >= 0 && d <= DEFAULT_BACKOFF.maxMs;
    }),
  );
});

test('jitter spreads clients: different random draws give different delays', () => {
  const draws = [0.1, 0.3, 0.5, 0.7, 0.9].map((r) => backoffDelay(6, DEFAULT_BACKOFF, () => r));
  assert.equal(new Set(draws).size, draws.length);
});
