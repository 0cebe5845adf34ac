/**
 * The browser page (src/web, bundled into dist/web by scripts/bundle-web.mjs) served at `/`, and
 * the WebSocket way to the stapler (ws-stapler.ts). Three files, read once when the relay is built,
 * served from memory under a strict Content-Security-Policy: scripts, styles and connections to
 * this origin only, nothing inline, no frames, no forms, no referrer. The code never reaches the
 * relay: it travels in the URL fragment (`/#512-ginger-habit-orbit`), which browsers do not send.
 * The files come from dist/web beside the code, or, in the single binary, from its assets
 * (scripts/build-binary.mjs puts dist/web in them as `web/<file>`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Stapler } from './stapler.js';
import { registerWebSocketStapler } from './ws-stapler.js';

/** The page's Content-Security-Policy. `connect-src 'self'` covers the WebSocket to this origin (CSP 3). */
export const WEB_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " +
  "worker-src 'self'; manifest-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const FILES = [
  { route: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { route: '/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { route: '/app.css', file: 'app.css', type: 'text/css; charset=utf-8' },
] as const;

/**
 * Where dist/web is, from this module: dist/src/relay/ (tsc's output), or dist/ (the esbuild
 * bundle). Undefined when the page was not built, or in the single binary, whose module has no
 * file URL (its page is in its assets: pageFiles()).
 */
export function webRoot(): string | undefined {
  for (const rel of ['../../web/', '../web/', './web/']) {
    try {
      const dir = fileURLToPath(new URL(rel, import.meta.url));
      if (existsSync(`${dir}index.html`)) return dir;
    } catch {
      // no file URL for this module (the single binary): no page
    }
  }
  return undefined;
}

/** Reads one of the page's files (index.html, app.js, app.css). */
export type PageFiles = (file: string) => Buffer;

/** The single binary's assets (node:sea), when this is the single binary and it was built with the page. */
function seaPageFiles(): PageFiles | undefined {
  let sea: typeof import('node:sea') | undefined;
  try {
    sea = process.getBuiltinModule('node:sea') as typeof import('node:sea') | undefined;
  } catch {
    return undefined;
  }
  if (sea === undefined || !sea.isSea()) return undefined;
  const read = (file: string) => Buffer.from(sea.getAsset(`web/${file}`));
  try {
    read('index.html');
  } catch {
    return undefined; // a binary built before the page was: no page
  }
  return read;
}

/** Where the page comes from: the single binary's assets, or dist/web; undefined when it was not built. */
export function pageFiles(): PageFiles | undefined {
  const sea = seaPageFiles();
  if (sea !== undefined) return sea;
  const root = webRoot();
  return root === undefined ? undefined : (file) => readFileSync(`${root}${file}`);
}

/** Registers the WebSocket way to the stapler and the page; true when the page is served (it was built). */
export function registerWeb(app: FastifyInstance, stapler: Stapler, files = pageFiles()): boolean {
  registerWebSocketStapler(app, stapler);
  if (files === undefined) {
    app.log.warn('the browser page is not built (dist/web): / answers 404');
    return false;
  }
  for (const { route, file, type } of FILES) {
    const body = files(file);
    app.get(route, (_request, reply) =>
      reply
        .header('content-type', type)
        .header('content-security-policy', WEB_CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cross-origin-opener-policy', 'same-origin')
        .header('cache-control', 'no-cache')
        .send(body),
    );
  }
  return true;
}
