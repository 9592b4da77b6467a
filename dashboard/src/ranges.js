// Which series to ask the counts API for. The API buckets in UTC, answers at most
// 1440 points, and refuses minute buckets older than the minute rows' retention
// (8 days), so every range is cut to whole steps here and the step is chosen to
// keep the request valid and the chart readable.

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** @type {Record<string, number>} */
export const STEP_MS = { minute: MINUTE, hour: HOUR, day: DAY };

/** The API's cap on a series. */
export const MAX_POINTS = 1440;
/** A chart stays readable up to about this many bars; finer steps are chosen only below it. */
export const READABLE_POINTS = 360;
/** Minute rows live 8 days; custom minute series stay a day inside that. */
export const MINUTE_HORIZON_MS = 7 * DAY;

/**
 * The preset ranges: the last N buckets of a step, the current (partial) bucket last.
 * @type {Record<string, {step: string, points: number, label: string}>}
 */
export const PRESETS = {
  '1h': { step: 'minute', points: 60, label: 'Last hour' },
  '24h': { step: 'hour', points: 24, label: 'Last 24 h' },
  '7d': { step: 'hour', points: 168, label: 'Last 7 days' },
  '30d': { step: 'day', points: 30, label: 'Last 30 days' },
};

/**
 * @typedef {{from: number, to: number, step: string}} Range  bounds in ms, `to` exclusive
 */

/** @param {number} ms @param {number} width */
export function floorTo(ms, width) {
  return Math.floor(ms / width) * width;
}

/** @param {number} ms @param {number} width */
export function ceilTo(ms, width) {
  return Math.ceil(ms / width) * width;
}

/**
 * A preset range, ending with the bucket `nowMs` falls in.
 * @param {string} name @param {number} nowMs @returns {Range}
 */
export function presetRange(name, nowMs) {
  const preset = PRESETS[name];
  if (!preset) throw new Error(`unknown range ${name}`);
  const width = STEP_MS[preset.step];
  const to = floorTo(nowMs, width) + width;
  return { from: to - preset.points * width, to, step: preset.step };
}

/**
 * A custom range widened to whole steps: the finest step with at most
 * READABLE_POINTS buckets (minutes only within the minute rows' lifetime), else the
 * finest that fits the API's cap.
 * @param {number} fromMs @param {number} toMs @param {number} nowMs
 * @returns {Range | {error: string}}
 */
export function customRange(fromMs, toMs, nowMs) {
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) return { error: 'pick both ends of the range' };
  if (toMs <= fromMs) return { error: '“to” must be after “from”' };
  for (const limit of [READABLE_POINTS, MAX_POINTS]) {
    for (const step of ['minute', 'hour', 'day']) {
      const width = STEP_MS[step];
      const from = floorTo(fromMs, width);
      const to = ceilTo(toMs, width);
      if ((to - from) / width > limit) continue;
      if (step === 'minute' && from < nowMs - MINUTE_HORIZON_MS) continue;
      return { from, to, step };
    }
  }
  return { error: `too long: at most ${MAX_POINTS} days` };
}

/** RFC 3339 without milliseconds, as the API echoes bounds. @param {number} ms */
export function iso(ms) {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** Number of buckets in a range. @param {Range} r */
export function points(r) {
  return (r.to - r.from) / STEP_MS[r.step];
}
