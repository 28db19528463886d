import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The api/ folder as Vercel sees it: a file is a route at its path (`api/cron/fanout.ts` →
 * `/api/cron/fanout`, `index.ts` → its folder), each exported HTTP method a handler. Files and
 * folders starting with `_` or `.` are not routes, as on Vercel.
 */
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
type WebHandler = (request: Request) => Promise<Response> | Response;

export interface RouteTable {
  paths: string[];
  dispatch(request: Request): Promise<Response>;
}

async function routeFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('_') || entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await routeFiles(full)));
    else if (/\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

function routePath(apiDir: string, file: string): string {
  const rel = relative(apiDir, file).split(sep).join('/').replace(/\.(ts|mts|js|mjs)$/, '');
  const path = `/api/${rel}`.replace(/\/index$/, '');
  return path === '/api/index' ? '/api' : path;
}

function problem(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ error: { code, message } }, { status, headers });
}

/** Load every route module under `apiDir` once and return a dispatcher with Vercel's semantics. */
export async function loadRoutes(apiDir: string): Promise<RouteTable> {
  const table = new Map<string, Record<string, unknown>>();
  for (const file of await routeFiles(apiDir)) {
    table.set(routePath(apiDir, file), (await import(pathToFileURL(file).href)) as Record<string, unknown>);
  }
  return {
    paths: [...table.keys()].sort(),
    async dispatch(request) {
      const pathname = new URL(request.url).pathname.replace(/\/+$/, '') || '/';
      const mod = table.get(pathname);
      if (!mod) return problem(404, 'not_found', `no route at ${pathname}`);
      const handler = mod[request.method];
      if (typeof handler !== 'function') {
        const allow = HTTP_METHODS.filter((m) => typeof mod[m] === 'function').join(', ');
        return problem(405, 'method_not_allowed', `method not allowed; use ${allow}`, { allow });
      }
      return (handler as WebHandler)(request);
    },
  };
}
