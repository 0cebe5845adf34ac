#!/usr/bin/env node
/**
 * `npm run bundle`: the CLI as ES modules for node (dist/tsc-croc.mjs and dist/chunks/), split
 * so that each command loads only what it uses (the relay's fastify, the QR code and the progress
 * bar are chunks of their own). Two start-up savings (bench/README.md, "Session 3"):
 *
 * - Node built-ins are taken with require(), not `import`: an ES import of a built-in makes node
 *   build a namespace of all its exports (reading every getter: node:module's loads its
 *   source-map support, for one createRequire).
 * - commander's `require('node:child_process')` (for executable subcommands, which tsc-croc does
 *   not have) is deferred to its first use: loading child_process also loads net, dgram and more.
 */
import { chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** `import ... from 'node:x'` becomes a CommonJS module `module.exports = require('node:x')`. */
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) => (args.kind === 'import-statement' ? { path: args.path, namespace: 'builtin-by-require' } : undefined));
    build.onLoad({ filter: /.*/, namespace: 'builtin-by-require' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

/** commander's child_process, loaded on first use. */
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(build) {
    build.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer) ? { path: 'child_process', namespace: 'lazy-builtin' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, () => ({
      contents: [
        'let m;',
        "const load = () => (m ??= require('node:child_process'));",
        'module.exports = new Proxy({}, { get: (_, k) => load()[k], has: (_, k) => k in load(), ownKeys: () => Reflect.ownKeys(load()), getOwnPropertyDescriptor: (_, k) => Reflect.getOwnPropertyDescriptor(load(), k) });',
      ].join('\n'),
      loader: 'js',
    }));
  },
};

await esbuild.build({
  entryPoints: [join(root, 'src', 'cli', 'main.ts')],
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir: join(root, 'dist'),
  entryNames: 'tsc-croc',
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  logLevel: 'warning',
  // every output file can require(): bundled CommonJS packages, and the built-ins above (node:module
  // taken as a built-in too, not imported: its ES namespace would load its source-map support)
  banner: { js: "const require = process.getBuiltinModule('node:module').createRequire(import.meta.url);" },
  plugins: [lazyChildProcess, builtinsByRequire],
});
chmodSync(join(root, 'dist', 'tsc-croc.mjs'), 0o755);
