// The public HTTP API, and nothing else: the page reads what any client can read,
// on the origin that served it.

import { iso } from './ranges.js';

export const EVENT_TYPES = ['view', 'play', 'like', 'share', 'complete'];

export class ApiError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * GET a JSON answer; a problem+json answer becomes an ApiError with its detail.
 * @param {string} path @param {AbortSignal} [signal]
 */
export async function get(path, signal) {
  const res = await fetch(path, { signal, headers: { accept: 'application/json' } });
  const text = await res.text();
  /** @type {any} */
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const detail = body && typeof body.detail === 'string' ? body.detail : res.statusText;
    throw new ApiError(res.status, `${res.status}: ${detail}`);
  }
  return body;
}

const enc = encodeURIComponent;

/**
 * A series `{count, series: [{start, count}]}` of one event type.
 * @param {string} video @param {string} type @param {import('./ranges.js').Range} r @param {AbortSignal} [signal]
 */
export function series(video, type, r, signal) {
  return get(
    `/api/v1/videos/${enc(video)}/counts/${enc(type)}?from=${iso(r.from)}&to=${iso(r.to)}&step=${r.step}`,
    signal,
  );
}

/** A count over a range, without buckets. */
export function count(/** @type {string} */ video, /** @type {string} */ type, /** @type {import('./ranges.js').Range} */ r, /** @type {AbortSignal} */ signal) {
  return get(`/api/v1/videos/${enc(video)}/counts/${enc(type)}?from=${iso(r.from)}&to=${iso(r.to)}`, signal);
}

/**
 * Distinct signed-in viewers over a range `{estimate, lower, upper, exact, from, to}`
 * (the bounds rounded out to the hour).
 * @param {string} video @param {import('./ranges.js').Range} r @param {AbortSignal} [signal]
 */
export function viewers(video, r, signal) {
  return get(`/api/v1/videos/${enc(video)}/viewers?from=${iso(r.from)}&to=${iso(r.to)}`, signal);
}

/** All-time views `{views}`. */
export function allTimeViews(/** @type {string} */ video, /** @type {AbortSignal} */ signal) {
  return get(`/api/v1/videos/${enc(video)}/views`, signal);
}

/** `{averageRating, totalRatingsCount}`; 404 for a video the catalog does not know. */
export function ratings(/** @type {string} */ video, /** @type {AbortSignal} */ signal) {
  return get(`/api/v1/videos/${enc(video)}/ratings`, signal);
}

/** `{from, to, items: [{videoId, count}]}`. */
export function trending(/** @type {string} */ window, /** @type {AbortSignal} */ signal) {
  return get(`/api/v1/trending?window=${enc(window)}&eventType=view&limit=10`, signal);
}

/** A page of VideoSummary. */
export function search(/** @type {string} */ query, /** @type {AbortSignal} */ signal) {
  return get(`/api/v1/search/videos?query=${enc(query)}&pageSize=10`, signal);
}

/** VideoDetail (for its title). */
export function video(/** @type {string} */ id, /** @type {AbortSignal} */ signal) {
  return get(`/api/v1/videos/id/${enc(id)}`, signal);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** @param {string} s */
export function isUuid(s) {
  return UUID.test(s);
}
