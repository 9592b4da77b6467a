import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Refresher } from '../../src/refresh.js';

/** A clock whose time moves only when the test says, and a document whose visibility it sets. */
function harness() {
  let time = 0;
  let timers = [];
  let nextId = 1;
  const clock = {
    now: () => time,
    setTimeout: (fn, ms) => {
      const id = nextId++;
      timers.push({ id, at: time + ms, fn });
      return id;
    },
    clearTimeout: (id) => {
      timers = timers.filter((t) => t.id !== id);
    },
  };
  const doc = new EventTarget();
  doc.visibilityState = 'visible';
  const calls = [];
  /** @type {Array<() => void>} */
  const open = [];
  const refresh = (signal) =>
    new Promise((resolve) => {
      calls.push({ at: time, signal });
      open.push(resolve);
    });
  const r = new Refresher(refresh, doc, clock);
  const flush = () => new Promise((res) => setImmediate(res));
  return {
    r,
    calls,
    pending: () => timers.length,
    /** Finishes the refresh in flight (its answers arrived). */
    async finish() {
      open.shift()();
      await flush();
    },
    /** Moves time forward, firing due timers in order. */
    async advance(ms) {
      const end = time + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        time = t.at;
        t.fn();
        await flush();
      }
      time = end;
    },
    setHidden(hidden) {
      doc.visibilityState = hidden ? 'hidden' : 'visible';
      doc.dispatchEvent(new Event('visibilitychange'));
    },
  };
}

test('refreshes every interval, counted from the end of the previous refresh', async () => {
  const h = harness();
  h.r.setInterval(5000);
  void h.r.now();
  assert.equal(h.calls.length, 1);
  await h.advance(2000); // a slow API: nothing piles up while it answers
  assert.equal(h.calls.length, 1);
  await h.finish();
  await h.advance(4999);
  assert.equal(h.calls.length, 1);
  await h.advance(1);
  assert.equal(h.calls.length, 2);
  assert.equal(h.calls[1].at, 7000);
  await h.finish();
  await h.advance(5000);
  assert.equal(h.calls.length, 3);
});

test('a new selection aborts the refresh in flight and starts one of its own', async () => {
  const h = harness();
  h.r.setInterval(5000);
  void h.r.now();
  void h.r.now();
  assert.equal(h.calls.length, 2);
  assert.ok(h.calls[0].signal.aborted);
  assert.ok(!h.calls[1].signal.aborted);
  await h.finish(); // the aborted one ends: it schedules nothing
  assert.equal(h.pending(), 0);
  await h.finish();
  assert.equal(h.pending(), 1);
});

test('nothing runs while hidden; showing the tab refreshes at once when one is due', async () => {
  const h = harness();
  const states = [];
  h.r.onState = (s) => states.push(s);
  h.r.setInterval(5000);
  void h.r.now();
  await h.finish();
  h.setHidden(true);
  assert.equal(h.pending(), 0);
  await h.advance(60_000);
  assert.equal(h.calls.length, 1);
  assert.equal(states.at(-1), 'paused');
  h.setHidden(false);
  await h.advance(0);
  assert.equal(h.calls.length, 2, 'due: refreshed on showing');
  await h.finish();
  // Hidden and shown again before the next is due: it waits for the rest of the interval.
  await h.advance(1000);
  h.setHidden(true);
  h.setHidden(false);
  await h.advance(3999);
  assert.equal(h.calls.length, 2);
  await h.advance(1);
  assert.equal(h.calls.length, 3);
});

test('off means no timer at all', async () => {
  const h = harness();
  void h.r.now();
  await h.finish();
  assert.equal(h.pending(), 0);
  await h.advance(3_600_000);
  assert.equal(h.calls.length, 1);
  h.r.setInterval(15_000);
  assert.equal(h.pending(), 1);
  h.r.setInterval(0);
  assert.equal(h.pending(), 0);
});
