// Drives the counts page in headless Chromium as a person would, and reports what
// the screen shows. It asserts nothing about the numbers: e2e/tests/dashboard.rs
// starts the services, sends a ledger of events, runs this script and compares
// every number reported here with its ledger.
//
//   node test/browser.mjs '{"origin": "http://127.0.0.1:PORT", "search": "word",
//                           "video": "<id>", "custom": {"from": "…", "to": "…"},
//                           "screenshot": "/path/to.png"}'
//
// Prints one JSON object on stdout. Chromium is Debian's (/usr/bin/chromium,
// scripts/install-browser), never a downloaded one.
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const executablePath = process.env.VCOUNT_CHROMIUM ?? '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  console.error(`${executablePath} is missing: run scripts/install-browser`);
  process.exit(2);
}
const origin = new URL(cfg.origin).origin;
const log = (...a) => console.error('[browser]', ...a);

// The flags this machine needs: no sandbox as root, and no background connections
// (the network is closed; Chromium would retry them many at a time). Playwright
// gives every launch a fresh, empty profile (--user-data-dir) of its own.
const browser = await chromium.launch({
  executablePath,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const report = { requests: [], foreign: [], failed: [], notFound: [], consoleErrors: [], reads: {} };
try {
  const context = await browser.newContext({
    locale: 'en-US',
    timezoneId: 'UTC',
    viewport: { width: 1280, height: 1000 },
  });
  // Headless Chromium always reports the page visible (a background tab and a
  // minimised window included), so hiding the tab is emulated: the page's own
  // visibilitychange handler runs against a visibilityState the test controls.
  await context.addInitScript(() => {
    Object.defineProperty(Document.prototype, 'visibilityState', {
      configurable: true,
      get: () => (window.__testHidden ? 'hidden' : 'visible'),
    });
    Object.defineProperty(Document.prototype, 'hidden', {
      configurable: true,
      get: () => Boolean(window.__testHidden),
    });
  });
  const page = await context.newPage();
  const t0 = Date.now();
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.protocol === 'data:') return;
    if (url.origin !== origin) report.foreign.push(req.url());
    report.requests.push({ at: Date.now() - t0, path: url.pathname, query: url.search });
  });
  page.on('response', (res) => {
    // 404s are kept apart: the test pastes an id the catalog does not know on purpose.
    if (res.status() === 404) report.notFound.push(new URL(res.url()).pathname);
    else if (res.status() >= 400) report.failed.push(`${res.status()} ${res.url()}`);
  });
  page.on('requestfailed', (req) => {
    // A refresh aborted by a newer selection is expected; anything else is not.
    const why = req.failure()?.errorText ?? '';
    if (!why.includes('ERR_ABORTED')) report.failed.push(`${why} ${req.url()}`);
  });
  page.on('console', (m) => {
    // Chromium logs every 404 as an error; those are checked through notFound.
    if (m.type() === 'error' && !m.text().includes('status of 404')) report.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => report.consoleErrors.push(String(e)));

  const settled = async () => {
    await page.waitForFunction(
      () => {
        const busy = document.getElementById('refresh-status')?.dataset.state === 'loading';
        const panels = [...document.querySelectorAll('[data-panel]')];
        return !busy && panels.every((p) => p instanceof HTMLElement && p.dataset.state !== 'loading');
      },
      null,
      { timeout: 30_000 },
    );
  };

  /** Everything a person reads on the page, as text, with the bounds each panel shows. */
  const read = () =>
    page.evaluate(() => {
      const text = (id) => document.getElementById(id)?.textContent?.trim() ?? null;
      const ds = (id) => ({ ...document.getElementById(id)?.dataset });
      return {
        title: text('video-title'),
        videoId: text('video-id'),
        chart: ds('chart-panel'),
        series: [...document.querySelectorAll('#series-table tbody tr')].map((tr) => [
          tr.dataset.start,
          tr.querySelector('td.num')?.textContent?.trim(),
        ]),
        chartCanvas: Boolean(document.querySelector('#chart canvas')),
        inRange: text('total-range'),
        inRangeCard: ds('total-range-card'),
        allTime: text('total-all'),
        rating: text('avg-rating'),
        ratingCount: text('rating-count'),
        unique: { text: text('unique-viewers'), ...ds('unique-card') },
        types: [...document.querySelectorAll('#types-table tbody tr')].map((tr) => [
          tr.dataset.type,
          tr.querySelector('td.num')?.textContent?.trim(),
        ]),
        typesPanel: ds('types-panel'),
        trending: [...document.querySelectorAll('#trending-list li[data-video-id]')].map((li) => [
          li.dataset.videoId,
          li.querySelector('.num')?.textContent?.trim(),
        ]),
        trendingPanel: ds('trending-panel'),
        errors: [...document.querySelectorAll('.error')].map((e) => e.textContent?.trim()).filter(Boolean),
        readAt: new Date().toISOString(),
      };
    });

  await page.goto(`${origin}/dashboard`);
  await settled();
  report.reads.initial = await read();

  // Find the video by a word of its title, and pick it among the results.
  await page.fill('#search', cfg.search);
  const result = page.locator(`#search-results button[data-video-id="${cfg.video}"]`);
  await result.waitFor({ timeout: 15_000 });
  report.searchResults = await page.$$eval('#search-results button[data-video-id]', (bs) =>
    bs.map((b) => b.dataset.videoId),
  );
  await result.click();
  await settled();
  report.reads.selected = await read();

  for (const range of ['1h', '24h', '7d', '30d']) {
    await page.click(`[data-range="${range}"]`);
    await settled();
    report.reads[range] = await read();
    if (range === '7d' && cfg.screenshot) {
      await page.screenshot({ path: cfg.screenshot, fullPage: true });
      log('screenshot', cfg.screenshot);
    }
  }

  // A custom range: ragged bounds, typed into the inputs.
  await page.click('[data-range="custom"]');
  await settled();
  await page.fill('#custom-from', cfg.custom.from);
  await page.fill('#custom-to', cfg.custom.to);
  await page.click('#custom-range button[type="submit"]');
  await settled();
  report.reads.custom = await read();

  // Another event type on the chart, and another trending window.
  await page.click('[data-range="24h"]');
  await page.selectOption('#event-type', 'like');
  await settled();
  report.reads.like24h = await read();
  await page.click('[data-window="24h"]');
  await settled();
  report.reads.trending24h = await read();

  // An id that was counted but is not in the catalog: counts, and no rating.
  await page.fill('#search', cfg.unknown);
  await page.press('#search', 'Enter');
  await settled();
  await page.waitForFunction(() => document.getElementById('video-title')?.textContent !== 'Untitled');
  report.reads.unknown = await read();

  // Pasting an id selects it too (the page keeps the selection in its URL).
  await page.fill('#search', cfg.video.toUpperCase());
  await page.press('#search', 'Enter');
  await settled();
  report.reads.pasted = await read();
  report.hash = await page.evaluate(() => location.hash);

  // Auto-refresh every 5 s: rounds of one request per panel, none overlapping;
  // nothing while the tab is hidden; a round at once when it shows again. The tab
  // is hidden right after a round has finished, so no round straddles the switch.
  const mark = () => report.requests.length;
  const rounds = () => page.$eval('#refresh-status', (e) => Number(e.dataset.rounds ?? 0));
  const refreshStart = mark();
  const started = Date.now() - t0;
  const before = await rounds();
  await page.selectOption('#refresh-every', '5');
  await page.waitForFunction(
    (n) => Number(document.getElementById('refresh-status')?.dataset.rounds ?? 0) >= n,
    before + 2,
    { timeout: 30_000, polling: 20 },
  );
  const hiddenStart = mark();
  const hiddenAt = Date.now() - t0;
  await page.evaluate(() => {
    window.__testHidden = true;
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.waitForTimeout(7_000);
  report.refreshStatusHidden = await page.$eval('#refresh-status', (e) => [e.dataset.state, e.textContent]);
  const shownStart = mark();
  const shownAt = Date.now() - t0;
  await page.evaluate(() => {
    window.__testHidden = false;
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.waitForTimeout(1_500);
  await settled();
  report.refresh = {
    started,
    hiddenAt,
    shownAt,
    visible: report.requests.slice(refreshStart, hiddenStart),
    hidden: report.requests.slice(hiddenStart, shownStart),
    shown: report.requests.slice(shownStart),
  };
  report.reads.final = await read();
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(report)}\n`);
