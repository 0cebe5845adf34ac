#!/usr/bin/env node
/**
 * `npm run bundle:web`: the browser page (src/web) into dist/web/: index.html, app.js, app.css.
 * One script bundle with no imports at run time (the relay serves it under a strict
 * Content-Security-Policy: no inline script, no CDN). src/core's crypto seam is switched to its
 * browser side: an import of `./platform.js` resolves to `./platform.browser.ts`. Nothing from
 * node may be pulled in: a `node:` import fails the build (test/web.bundle.test.ts checks the same).
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** src/core's `./platform.js` becomes `./platform.browser.ts`; any node built-in is an error. */
export const browserPlatform = {
  name: 'browser-platform',
  setup(build) {
    build.onResolve({ filter: /(^|\/)platform\.js$/ }, (args) => {
      const target = resolve(args.resolveDir, args.path);
      return target === join(root, 'src', 'core', 'platform.js') ? { path: join(root, 'src', 'core', 'platform.browser.ts') } : undefined;
    });
    build.onResolve({ filter: /^node:/ }, (args) => ({ errors: [{ text: `${args.path} imported by ${args.importer}: the browser bundle may not use node built-ins` }] }));
  },
};

/** esbuild options for a browser bundle of `entry` (a path under src/). */
export function webBuildOptions(entry, outfile) {
  return {
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome120', 'firefox120', 'safari17'],
    outfile,
    minify: true,
    sourcemap: false,
    metafile: true,
    logLevel: 'warning',
    legalComments: 'none',
    plugins: [browserPlatform],
  };
}

export async function bundleWeb() {
  const out = join(root, 'dist', 'web');
  mkdirSync(out, { recursive: true });
  const result = await esbuild.build(webBuildOptions(join(root, 'src', 'web', 'main.ts'), join(out, 'app.js')));
  copyFileSync(join(root, 'src', 'web', 'index.html'), join(out, 'index.html'));
  copyFileSync(join(root, 'src', 'web', 'app.css'), join(out, 'app.css'));
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await bundleWeb();
