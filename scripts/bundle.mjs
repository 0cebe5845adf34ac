#!/usr/bin/env node
/**
 * `npm run bundle`: the CLI for node, as CommonJS: dist/tsc-croc.cjs, the executable (a few KB:
 * it answers `--version` itself), and dist/tsc-croc-cli.cjs, everything else, which the
 * executable compiles with a V8 code cache (src/cli/code-cache.ts). Start-up is what it is for
 * (bench/README.md, "Session 3", "Session 4" and "Session 5"):
 *
 * - CommonJS, not ES modules: node starts no ES module loader (~4 ms of CPU per start), and a
 *   CommonJS file can be compiled through node:vm with a code cache (node 20 has none for ES
 *   modules): a start then neither parses nor compiles the ~700 KB again (~20 ms per start).
 * - The CLI in one file: every module of ours and the packages the commands use are bundled together. A
 *   module imported with import() (the relay server, the SPAKE2 code, the local network, the
 *   prompts) is still evaluated only when first imported (esbuild wraps it in a lazy init); only
 *   its parsing is paid up front. Split into ES-module chunks (until Session 4), a receive loaded
 *   ~25 files, each read asynchronously and linked: 19 ms more CPU per start than one file.
 * - The relay server's packages (fastify, ioredis, and whatever src/relay/ imports) and the packages
 *   loaded with import() (the progress bar, the QR code) are not bundled: they are `require()`d
 *   from node_modules when first used, so a send or a receive never parses their ~1.7 MB.
 * - Node built-ins are taken with require(), not `import`: an ES import of a built-in makes node
 *   build a namespace of all its exports (reading every getter: node:module's loads its
 *   source-map support).
 * - commander's `require('node:child_process')` (for executable subcommands, which tsc-croc does
 *   not have) is deferred to its first use: loading child_process also loads net, dgram and more.
 */
import { createHash } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
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

/**
 * Packages left in node_modules (the package's dependencies), required on first use: those the
 * relay server imports, and those imported with import(). A static `import` of one becomes a lazy
 * CommonJS module here: required when the importing module is first evaluated.
 */
const lazyPackages = {
  name: 'lazy-packages',
  setup(build) {
    // a bare name: a package (not a built-in, not a path); Go regular expressions have no lookahead
    build.onResolve({ filter: /^[@a-z0-9]/ }, (args) => {
      if (args.path.startsWith('node:')) return undefined;
      if (args.namespace === 'lazy-package') return { path: args.path, external: true }; // the require() below
      const fromRelay = /[\\/]src[\\/]relay[\\/]/.test(args.importer);
      if (args.kind === 'dynamic-import') return { path: args.path, external: true };
      if (fromRelay && args.kind === 'import-statement') return { path: args.path, namespace: 'lazy-package' };
      return undefined;
    });
    build.onLoad({ filter: /.*/, namespace: 'lazy-package' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

const common = {
  bundle: true,
  splitting: false,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  charset: 'ascii',
  logLevel: 'warning',
};
// the CLI: every command, one CommonJS file. `import()` of a package becomes require() (all of
// them have a CommonJS build), and import.meta.url the file's own URL.
const cliOut = join(root, 'dist', 'tsc-croc-cli.cjs');
await esbuild.build({
  ...common,
  entryPoints: [join(root, 'src', 'cli', 'run.ts')],
  outfile: cliOut,
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': '__tscCrocFileUrl' },
  banner: { js: "var __tscCrocFileUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [lazyPackages, lazyChildProcess, builtinsByRequire],
});
// ASCII only: V8 then holds the source as a one-byte string (half the memory, a faster read and
// scan). esbuild already escapes every string, template and identifier (charset 'ascii'); what is
// left is comments (noble's `⋅`, `→` in ours), where an escape reads the same.
const built = readFileSync(cliOut, 'utf8');
const cli = built.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
if (cli !== built) writeFileSync(cliOut, cli);
const left = cli.match(/\bimport\(\s*["'`][^"'`]*["'`]\s*\)/);
if (left) throw new Error(`the CLI bundle still has a dynamic import, which its loader cannot run: ${left[0]}`);
// the executable: `--version` answered from this small file alone; anything else loads the CLI
// with a code cache named after the CLI's build (src/cli/code-cache.ts)
const build = createHash('sha256').update(cli).digest('hex').slice(0, 16);
const bin = join(root, 'dist', 'tsc-croc.cjs');
await esbuild.build({
  ...common,
  entryPoints: [join(root, 'src', 'cli', 'launch.ts')],
  outfile: bin,
  define: { __TSC_CROC_CLI_BUILD__: JSON.stringify(build) },
  banner: { js: '#!/usr/bin/env node' },
  plugins: [builtinsByRequire],
});
chmodSync(bin, 0o755);
