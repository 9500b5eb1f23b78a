import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

// From src/app/metrics and from dist/app/metrics alike, the package root is three folders up.
const DASHBOARD_DIR = fileURLToPath(new URL('../../../public/dashboard/', import.meta.url));
const vendor = createRequire(import.meta.url);

interface Asset {
  readonly file: string;
  readonly type: string;
  /** Our own files change with each release; the charting library only with its version. */
  readonly cache: string;
}

const own = (name: string, type: string): Asset => ({ file: join(DASHBOARD_DIR, name), type, cache: 'no-cache' });
const library = (specifier: string, type: string): Asset => ({ file: vendor.resolve(specifier), type, cache: 'public, max-age=86400' });

const ASSETS: Record<string, Asset> = {
  '/dashboard': own('index.html', 'text/html; charset=utf-8'),
  '/dashboard/': own('index.html', 'text/html; charset=utf-8'),
  '/dashboard/dashboard.js': own('dashboard.js', 'text/javascript; charset=utf-8'),
  '/dashboard/dashboard.css': own('dashboard.css', 'text/css; charset=utf-8'),
  '/dashboard/vendor/uplot.js': library('uplot/dist/uPlot.iife.min.js', 'text/javascript; charset=utf-8'),
  '/dashboard/vendor/uplot.css': library('uplot/dist/uPlot.min.css', 'text/css; charset=utf-8'),
};

// The page holds the admin token in sessionStorage: nothing but our own scripts may run on it.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * The statistics dashboard at /dashboard: a static page and its assets, public (the page asks for
 * the admin token and sends it with its API calls). Register it outside the token-protected scope.
 */
export function registerDashboardRoutes(app: FastifyInstance): void {
  for (const [url, asset] of Object.entries(ASSETS)) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .headers(SECURITY_HEADERS)
        .header('cache-control', asset.cache)
        .type(asset.type)
        .send(await readFile(asset.file)),
    );
  }
}
