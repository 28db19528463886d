import { BadRequestError } from '../platform/errors.js';
import type { StreamStatus } from './report.js';

/** Stream rows per dashboard page. */
export const STREAMS_PER_PAGE = 50;

/** Which stream rows the dashboard shows: a search and a page number (1-based). */
export interface StreamView {
  /** Case-insensitive substring of the stream id or organization id; empty = every stream. */
  q: string;
  page: number;
}

/** One page of stream rows, most lagging first. */
export interface StreamPage {
  rows: StreamStatus[];
  /** Streams matching the search. */
  matched: number;
  page: number;
  pages: number;
}

/** `?q=` (at most 100 characters) and `?page=` (a positive integer) of the dashboard URL. */
export function streamView(url: URL): StreamView {
  const q = (url.searchParams.get('q') ?? '').trim();
  if (q.length > 100) throw new BadRequestError('q must be at most 100 characters');
  const rawPage = url.searchParams.get('page');
  const page = rawPage === null || rawPage === '' ? 1 : Number(rawPage);
  if (!Number.isInteger(page) || page < 1) throw new BadRequestError(`page must be a positive integer; got "${rawPage!.slice(0, 20)}"`);
  return { q, page };
}

/** Failing first, then by lag (largest first; streams without a token last), then by id. */
export function byUrgency(a: StreamStatus, b: StreamStatus): number {
  const fa = a.state === 'failing' ? 0 : 1;
  const fb = b.state === 'failing' ? 0 : 1;
  if (fa !== fb) return fa - fb;
  const la = a.lagMs ?? -1;
  const lb = b.lagMs ?? -1;
  if (la !== lb) return lb - la;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Filter by the search, order by urgency, cut the page. A page past the end shows the last one. */
export function pageStreams(streams: readonly StreamStatus[], view: StreamView, perPage = STREAMS_PER_PAGE): StreamPage {
  const needle = view.q.toLowerCase();
  const matched = needle ? streams.filter((s) => s.id.toLowerCase().includes(needle) || (s.orgId ?? '').toLowerCase().includes(needle)) : [...streams];
  const pages = Math.max(1, Math.ceil(matched.length / perPage));
  const page = Math.min(view.page, pages);
  // A full sort of 10,000 rows costs a few ms; only the page's rows are rendered.
  matched.sort(byUrgency);
  return { rows: matched.slice((page - 1) * perPage, page * perPage), matched: matched.length, page, pages };
}
