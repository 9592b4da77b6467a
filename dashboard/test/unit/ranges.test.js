import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DAY, HOUR, MAX_POINTS, MINUTE, customRange, iso, points, presetRange } from '../../src/ranges.js';

const now = Date.parse('2026-11-29T13:47:31.250Z');

test('presets end with the current bucket, aligned to their step, within the API cap', () => {
  const cases = {
    '1h': ['minute', 60, '2026-11-29T12:48:00Z', '2026-11-29T13:48:00Z'],
    '24h': ['hour', 24, '2026-11-28T14:00:00Z', '2026-11-29T14:00:00Z'],
    '7d': ['hour', 168, '2026-11-22T14:00:00Z', '2026-11-29T14:00:00Z'],
    '30d': ['day', 30, '2026-10-31T00:00:00Z', '2026-11-30T00:00:00Z'],
  };
  for (const [name, [step, n, from, to]] of Object.entries(cases)) {
    const r = presetRange(name, now);
    assert.equal(r.step, step, name);
    assert.equal(points(r), n, name);
    assert.equal(iso(r.from), from, name);
    assert.equal(iso(r.to), to, name);
    assert.ok(points(r) <= MAX_POINTS);
  }
  assert.throws(() => presetRange('2h', now));
});

test('a custom range is widened to whole steps of the finest readable step', () => {
  const r = customRange(now - 5 * HOUR + 17 * MINUTE + 5_000, now - 2 * HOUR + 3 * MINUTE, now);
  assert.deepEqual([r.step, iso(r.from), iso(r.to)], ['minute', '2026-11-29T09:04:00Z', '2026-11-29T11:51:00Z']);
  const day = customRange(now - 20 * HOUR, now, now);
  assert.deepEqual([day.step, points(day)], ['hour', 21]);
  const month = customRange(now - 40 * DAY, now, now);
  assert.equal(month.step, 'day', 'more than 360 hours: days');
  // Minutes older than the minute rows' lifetime are never asked for.
  const old = customRange(now - 10 * DAY, now - 10 * DAY + 2 * HOUR, now);
  assert.deepEqual([old.step, points(old)], ['hour', 3]);
  // Past READABLE_POINTS but within the cap: the finest step that fits.
  const long = customRange(now - 1000 * DAY, now, now);
  assert.deepEqual([long.step, points(long) <= MAX_POINTS], ['day', true]);
});

test('a custom range that cannot be asked for is an error, not a request', () => {
  assert.ok('error' in customRange(now, now - MINUTE, now));
  assert.ok('error' in customRange(now, now, now));
  assert.ok('error' in customRange(Number.NaN, now, now));
  assert.ok('error' in customRange(now - 2000 * DAY, now, now));
});
