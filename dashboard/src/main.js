// The counts page: pick a video and a range, see its counts. Every number comes
// from the public API (api.js); the page computes no count of its own beyond
// showing the series' total. The selection lives in the URL's hash, so a view can
// be bookmarked or shared.
//
// Each refresh makes one request per panel (the event-types table: one per type,
// as the API counts one type per request), and refreshes never overlap
// (refresh.js). Every panel carries `data-state` (idle, loading, ready, error) and
// the bounds it shows, so a test can wait for exactly what a person would see.

import uPlot from 'uplot';
import * as api from './api.js';
import { PRESETS, customRange, iso, presetRange } from './ranges.js';
import { Refresher } from './refresh.js';

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const fmtInt = new Intl.NumberFormat();
const fmtRating = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const fmtTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

const state = {
  /** @type {{id: string, title: string | null} | null} */
  video: null,
  range: '24h',
  /** @type {{from: number, to: number} | null} */
  custom: null,
  type: 'view',
  trend: '1h',
  every: 15,
};

/** Titles already looked up (trending shows ids; titles are fetched once per id). */
const titles = new Map();

// ------------------------------------------------------------------ URL state --

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const video = p.get('video');
  if (video && api.isUuid(video)) state.video = { id: video.toLowerCase(), title: null };
  const range = p.get('range');
  if (range && (range in PRESETS || range === 'custom')) state.range = range;
  const from = Date.parse(p.get('from') ?? '');
  const to = Date.parse(p.get('to') ?? '');
  if (Number.isFinite(from) && Number.isFinite(to)) state.custom = { from, to };
  if (state.range === 'custom' && !state.custom) state.range = '24h';
  const type = p.get('type');
  if (type && api.EVENT_TYPES.includes(type)) state.type = type;
  const trend = p.get('trend');
  if (trend && ['1h', '24h', '7d'].includes(trend)) state.trend = trend;
  const every = Number(p.get('every'));
  if ([0, 5, 15, 30, 60].includes(every) && p.has('every')) state.every = every;
}

function writeHash() {
  const p = new URLSearchParams();
  if (state.video) p.set('video', state.video.id);
  p.set('range', state.range);
  if (state.range === 'custom' && state.custom) {
    p.set('from', iso(state.custom.from));
    p.set('to', iso(state.custom.to));
  }
  p.set('type', state.type);
  p.set('trend', state.trend);
  p.set('every', String(state.every));
  history.replaceState(null, '', `#${p}`);
}

/** The range to ask for now: presets roll forward with the clock. */
function currentRange() {
  if (state.range === 'custom' && state.custom) return customRange(state.custom.from, state.custom.to, Date.now());
  return presetRange(state.range, Date.now());
}

// --------------------------------------------------------------------- panels --

/**
 * Runs one panel's load: marks it loading, then ready or error. An aborted load
 * (the selection changed meanwhile) renders nothing.
 * @param {string} panelId @param {string} errorId @param {AbortSignal} signal @param {() => Promise<void>} load
 */
async function panel(panelId, errorId, signal, load) {
  const el = $(panelId);
  el.dataset.state = 'loading';
  try {
    await load();
    if (signal.aborted) return;
    if (errorId) $(errorId).textContent = '';
    el.dataset.state = 'ready';
  } catch (e) {
    if (signal.aborted || (e instanceof DOMException && e.name === 'AbortError')) return;
    if (errorId) $(errorId).textContent = e instanceof Error ? e.message : String(e);
    el.dataset.state = 'error';
  }
}

/** @type {uPlot | null} */
let plot = null;
/** The x axis spans the whole range (seconds), so the last bucket's bar is not cut off. */
let xBounds = [0, 1];

/** @param {number[]} xs bucket starts, seconds @param {number[]} ys @param {number} endSec the range's end */
function drawChart(xs, ys, endSec) {
  xBounds = [xs[0] ?? endSec, endSec];
  const el = $('chart');
  const width = Math.max(300, el.clientWidth);
  if (!plot) {
    plot = new uPlot(
      {
        width,
        height: 260,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true, range: () => [xBounds[0], xBounds[1]] },
          y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] },
        },
        axes: [{ stroke: '#c9d1d9', grid: { stroke: '#30363d' } }, { stroke: '#c9d1d9', grid: { stroke: '#30363d' } }],
        series: [
          {},
          {
            label: state.type,
            stroke: '#58a6ff',
            fill: 'rgba(88, 166, 255, 0.35)',
            paths: uPlot.paths.bars?.({ size: [0.8, 40], align: 1 }),
            points: { show: false },
          },
        ],
      },
      [xs, ys],
      el,
    );
    new ResizeObserver(() => plot?.setSize({ width: Math.max(300, el.clientWidth), height: 260 })).observe(el);
  } else {
    plot.setData([xs, ys]);
  }
}

/** @param {HTMLElement} tbody @param {Array<[string, string, string]>} rows [key, label, value] */
function fillRows(tbody, rows, key = 'start') {
  const out = document.createDocumentFragment();
  for (const [k, label, value] of rows) {
    const tr = document.createElement('tr');
    tr.dataset[key] = k;
    const a = document.createElement('td');
    a.textContent = label;
    const b = document.createElement('td');
    b.className = 'num';
    b.textContent = value;
    tr.append(a, b);
    out.append(tr);
  }
  tbody.replaceChildren(out);
}

/** @param {import('./ranges.js').Range} r @param {AbortSignal} signal */
function loadChart(r, signal) {
  const video = /** @type {{id: string}} */ (state.video).id;
  const type = state.type;
  return panel('chart-panel', 'chart-error', signal, async () => {
    const answer = await api.series(video, type, r, signal);
    if (signal.aborted) return;
    /** @type {Array<{start: string, count: number}>} */
    const points = answer.series;
    const el = $('chart-panel');
    el.dataset.from = answer.from;
    el.dataset.to = answer.to;
    el.dataset.step = answer.step;
    el.dataset.eventType = type;
    $('chart-title').textContent = `${type[0].toUpperCase()}${type.slice(1)}s`;
    $('chart-step').textContent = answer.step;
    drawChart(
      points.map((p) => Date.parse(p.start) / 1000),
      points.map((p) => p.count),
      Date.parse(answer.to) / 1000,
    );
    fillRows(
      /** @type {HTMLElement} */ ($('series-table').querySelector('tbody')),
      points.map((p) => [p.start, fmtTime.format(new Date(p.start)), fmtInt.format(p.count)]),
    );
    $('total-range').textContent = fmtInt.format(answer.count);
    $('total-range-card').dataset.from = answer.from;
    $('total-range-card').dataset.to = answer.to;
    $('total-range-label').textContent = `${type}s, ${fmtTime.format(new Date(answer.from))} – ${fmtTime.format(new Date(answer.to))}`;
    typeCount(type, answer.count);
  });
}

/** @param {string} type @param {number | null} n */
function typeCount(type, n) {
  const cell = $('types-table').querySelector(`tr[data-type="${type}"] td.num`);
  if (cell) cell.textContent = n === null ? '–' : fmtInt.format(n);
}

/** The other event types' totals over the same range (the charted one comes with the chart). */
function loadTypes(/** @type {import('./ranges.js').Range} */ r, /** @type {AbortSignal} */ signal) {
  const video = /** @type {{id: string}} */ (state.video).id;
  const others = api.EVENT_TYPES.filter((t) => t !== state.type);
  return panel('types-panel', 'types-error', signal, async () => {
    const answers = await Promise.all(others.map((t) => api.count(video, t, r, signal)));
    if (signal.aborted) return;
    const el = $('types-panel');
    el.dataset.from = answers[0].from;
    el.dataset.to = answers[0].to;
    others.forEach((t, i) => typeCount(t, answers[i].count));
  });
}

/** Distinct signed-in viewers over the range, from the API's sketches (exact up to 384). */
function loadViewers(/** @type {import('./ranges.js').Range} */ r, /** @type {AbortSignal} */ signal) {
  const video = /** @type {{id: string}} */ (state.video).id;
  return panel('unique-card', '', signal, async () => {
    const answer = await api.viewers(video, r, signal);
    if (signal.aborted) return;
    const el = $('unique-card');
    el.dataset.from = answer.from;
    el.dataset.to = answer.to;
    el.dataset.exact = String(answer.exact);
    $('unique-viewers').textContent = fmtInt.format(answer.estimate);
    const bounds = `${fmtTime.format(new Date(answer.from))} – ${fmtTime.format(new Date(answer.to))}`;
    $('unique-label').textContent = answer.exact
      ? `signed-in users, ${bounds}`
      : `signed-in users (about: ${fmtInt.format(answer.lower)}–${fmtInt.format(answer.upper)}), ${bounds}`;
  });
}

function loadAllTime(/** @type {AbortSignal} */ signal) {
  const video = /** @type {{id: string}} */ (state.video).id;
  return panel('total-all-card', '', signal, async () => {
    const answer = await api.allTimeViews(video, signal);
    if (!signal.aborted) $('total-all').textContent = fmtInt.format(answer.views);
  });
}

function loadRating(/** @type {AbortSignal} */ signal) {
  const video = /** @type {{id: string}} */ (state.video).id;
  return panel('rating-card', '', signal, async () => {
    try {
      const answer = await api.ratings(video, signal);
      if (signal.aborted) return;
      const n = answer.totalRatingsCount;
      $('avg-rating').textContent = n > 0 ? fmtRating.format(answer.averageRating) : '–';
      $('rating-count').textContent = `${fmtInt.format(n)} rating${n === 1 ? '' : 's'}`;
    } catch (e) {
      // A counted id the catalog does not know has no ratings to show.
      if (!(e instanceof api.ApiError && e.status === 404)) throw e;
      $('avg-rating').textContent = '–';
      $('rating-count').textContent = 'not in the catalog';
    }
  });
}

function loadTrending(/** @type {AbortSignal} */ signal) {
  const window = state.trend;
  return panel('trending-panel', 'trending-error', signal, async () => {
    const answer = await api.trending(window, signal);
    if (signal.aborted) return;
    const el = $('trending-panel');
    el.dataset.window = window;
    el.dataset.from = answer.from;
    el.dataset.to = answer.to;
    /** @type {Array<{videoId: string, count: number}>} */
    const items = answer.items;
    const list = $('trending-list');
    list.replaceChildren(
      ...items.map((item) => {
        const li = document.createElement('li');
        li.dataset.videoId = item.videoId;
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'link';
        button.textContent = titles.get(item.videoId) ?? item.videoId;
        button.addEventListener('click', () => select(item.videoId, titles.get(item.videoId) ?? null));
        const count = document.createElement('span');
        count.className = 'num';
        count.textContent = fmtInt.format(item.count);
        li.append(button, count);
        return li;
      }),
    );
    if (items.length === 0) list.innerHTML = '<li class="muted">nothing counted in this window</li>';
    $('trending-bounds').textContent = `${fmtTime.format(new Date(answer.from))} – ${fmtTime.format(new Date(answer.to))}`;
    // Titles for ids not seen before, once each (not on every refresh).
    for (const { videoId } of items.filter((i) => !titles.has(i.videoId))) {
      titles.set(videoId, null);
      api.video(videoId).then(
        (v) => {
          titles.set(videoId, v.title);
          const b = list.querySelector(`li[data-video-id="${videoId}"] button`);
          if (b) b.textContent = v.title;
        },
        () => {},
      );
    }
  });
}

// ------------------------------------------------------------------- refresh --

const refresher = new Refresher(async (signal) => {
  const r = currentRange();
  /** @type {Promise<void>[]} */
  const jobs = [loadTrending(signal)];
  if (state.video && !('error' in r)) {
    jobs.push(loadChart(r, signal), loadTypes(r, signal), loadViewers(r, signal), loadAllTime(signal), loadRating(signal));
  }
  await Promise.all(jobs);
  if (!signal.aborted) {
    const status = $('refresh-status');
    status.dataset.updated = new Date().toISOString();
    status.dataset.rounds = String(Number(status.dataset.rounds ?? 0) + 1);
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }
}, document);

refresher.onState = (s) => {
  const status = $('refresh-status');
  status.dataset.state = s;
  if (s === 'paused') status.textContent = 'paused while the tab is hidden';
};

// ------------------------------------------------------------------ controls --

/** @param {string} id @param {string | null} title */
function select(id, title) {
  state.video = { id: id.toLowerCase(), title };
  showVideo();
  $('search-results').hidden = true;
  changed();
}

function showVideo() {
  if (!state.video) return;
  const v = state.video;
  $('video-id').textContent = v.id;
  $('video-title').textContent = v.title ?? titles.get(v.id) ?? 'Untitled';
  if (v.title === null && !titles.get(v.id)) {
    api.video(v.id).then(
      (d) => {
        titles.set(v.id, d.title);
        if (state.video?.id === v.id) $('video-title').textContent = d.title;
      },
      () => {
        if (state.video?.id === v.id) $('video-title').textContent = 'Not in the catalog (counts only)';
      },
    );
  }
}

function showRange() {
  for (const b of document.querySelectorAll('[data-range]')) {
    b.setAttribute('aria-pressed', String(/** @type {HTMLElement} */ (b).dataset.range === state.range));
  }
  for (const b of document.querySelectorAll('[data-window]')) {
    b.setAttribute('aria-pressed', String(/** @type {HTMLElement} */ (b).dataset.window === state.trend));
  }
  $('custom-range').hidden = state.range !== 'custom';
}

/** The selection changed: save it and refresh at once. */
function changed() {
  writeHash();
  showRange();
  void refresher.now();
}

function setupControls() {
  const typeSelect = /** @type {HTMLSelectElement} */ ($('event-type'));
  for (const t of api.EVENT_TYPES) typeSelect.add(new Option(t, t, false, t === state.type));
  typeSelect.addEventListener('change', () => {
    state.type = typeSelect.value;
    changed();
  });
  fillRows(
    /** @type {HTMLElement} */ ($('types-table').querySelector('tbody')),
    api.EVENT_TYPES.map((t) => [t, t, '–']),
    'type',
  );

  for (const b of document.querySelectorAll('[data-range]')) {
    b.addEventListener('click', () => {
      const range = /** @type {string} */ (/** @type {HTMLElement} */ (b).dataset.range);
      if (range === 'custom') {
        state.range = 'custom';
        showRange();
        if (!state.custom) {
          const r = presetRange('24h', Date.now());
          state.custom = { from: r.from, to: r.to };
        }
        /** @type {HTMLInputElement} */ ($('custom-from')).value = localInput(state.custom.from);
        /** @type {HTMLInputElement} */ ($('custom-to')).value = localInput(state.custom.to);
        changed();
        return;
      }
      state.range = range;
      changed();
    });
  }
  $('custom-range').addEventListener('submit', (e) => {
    e.preventDefault();
    const from = new Date(/** @type {HTMLInputElement} */ ($('custom-from')).value).getTime();
    const to = new Date(/** @type {HTMLInputElement} */ ($('custom-to')).value).getTime();
    const r = customRange(from, to, Date.now());
    $('custom-error').textContent = 'error' in r ? r.error : '';
    if ('error' in r) return;
    state.custom = { from, to };
    changed();
  });
  for (const b of document.querySelectorAll('[data-window]')) {
    b.addEventListener('click', () => {
      state.trend = /** @type {string} */ (/** @type {HTMLElement} */ (b).dataset.window);
      changed();
    });
  }

  const every = /** @type {HTMLSelectElement} */ ($('refresh-every'));
  every.value = String(state.every);
  every.addEventListener('change', () => {
    state.every = Number(every.value);
    writeHash();
    refresher.setInterval(state.every * 1000);
  });

  setupSearch();
}

/** `datetime-local` wants local time without a zone. @param {number} ms */
function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

function setupSearch() {
  const input = /** @type {HTMLInputElement} */ ($('search'));
  const results = $('search-results');
  /** @type {AbortController | null} */
  let pending = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let debounce;

  /** @param {Array<{id: string, title: string, views?: number}>} items @param {string} [note] */
  const show = (items, note) => {
    results.replaceChildren(
      ...items.map((v) => {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        b.dataset.videoId = v.id;
        b.textContent = v.title;
        if (v.views !== undefined) {
          const n = document.createElement('span');
          n.className = 'muted';
          n.textContent = `${fmtInt.format(v.views)} views`;
          b.append(' ', n);
        }
        b.addEventListener('click', () => {
          input.value = '';
          select(v.id, v.title.startsWith('Use id ') ? null : v.title);
        });
        li.append(b);
        return li;
      }),
    );
    if (note) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = note;
      results.append(li);
    }
    results.hidden = items.length === 0 && !note;
  };

  const run = async () => {
    const q = input.value.trim();
    pending?.abort();
    if (api.isUuid(q)) {
      show([{ id: q, title: `Use id ${q.toLowerCase()}` }]);
      return;
    }
    if (q.length < 2) {
      show([]);
      return;
    }
    const ctl = new AbortController();
    pending = ctl;
    try {
      const page = await api.search(q, ctl.signal);
      /** @type {Array<{videoId: string, title: string, views: number}>} */
      const data = page.data;
      for (const v of data) titles.set(v.videoId, v.title);
      show(
        data.map((v) => ({ id: v.videoId, title: v.title, views: v.views })),
        data.length === 0 ? 'no video matches every word' : undefined,
      );
    } catch (e) {
      if (!ctl.signal.aborted) show([], e instanceof Error ? e.message : String(e));
    }
  };
  input.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(run, 250);
  });
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    clearTimeout(debounce);
    const q = input.value.trim();
    if (api.isUuid(q)) {
      input.value = '';
      select(q, null);
    } else void run();
  });
}

readHash();
setupControls();
showVideo();
showRange();
writeHash();
refresher.setInterval(state.every * 1000);
void refresher.now();
