import type { StreamStatus } from './report.js';
import { matchesSearch, streamQuery, type StreamQuery } from './streams.js';

/** Stream rows per dashboard page. */
export const STREAMS_PER_PAGE = 50;

/** Which stream rows the dashboard shows: a search, a page number (1-based) and rows per page. */
export type StreamView = StreamQuery;

/** One page of stream rows, most lagging first. */
export interface StreamPage {
  rows: StreamStatus[];
  /** Streams matching the search. */
  matched: number;
  page: number;
  pages: number;
}

/**
 * The stream query of a status URL: `?q=` or `?org=` (organization or stream id prefix,
 * case-insensitive), `?page=` (1-based) and `?limit=` (1–500, default 50). Bad values are a 400
 * naming the parameter.
 */
export function streamView(url: URL): StreamQuery {
  const p = url.searchParams;
  const name = p.has('q') ? 'q' : 'org';
  return streamQuery({ name, q: p.get(name), page: p.get('page'), limit: p.get('limit') });
}

/**
 * The status order in code, for rows already in memory (tests compare the MongoDB query with it):
 * failing first, then by lag (largest first; streams without a token last), then by id.
 */
export function byUrgency(a: StreamStatus, b: StreamStatus): number {
  const fa = a.state === 'failing' ? 0 : 1;
  const fb = b.state === 'failing' ? 0 : 1;
  if (fa !== fb) return fa - fb;
  const la = a.lagMs ?? -1;
  const lb = b.lagMs ?? -1;
  if (la !== lb) return lb - la;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** In memory: filter by the search (the same prefix rule as the query), order by urgency, cut the page. A page past the end shows the last one. */
export function pageStreams(streams: readonly StreamStatus[], view: Pick<StreamView, 'q' | 'page'> & { limit?: number }, perPage = view.limit ?? STREAMS_PER_PAGE): StreamPage {
  const matched = streams.filter((s) => matchesSearch(s.id, s.orgId, view.q));
  const pages = Math.max(1, Math.ceil(matched.length / perPage));
  const page = Math.min(view.page, pages);
  // A full sort of 10,000 rows costs a few ms; only the page's rows are rendered.
  matched.sort(byUrgency);
  return { rows: matched.slice((page - 1) * perPage, page * perPage), matched: matched.length, page, pages };
}
