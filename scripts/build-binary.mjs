#!/usr/bin/env node
/**
 * `npm run build:binary [-- --out FILE] [-- --node PATH] [-- --no-code-cache]`: the single executable dist/tsc-croc.
 * The CLI (src/cli/binary-entry.ts) is bundled to one CommonJS file, turned into a SEA blob by
 * `node --experimental-sea-config`, and injected with postject into a copy of a Node binary: by
 * default the one running this script (process.execPath); `--node PATH` names another one, e.g.
 * the official Node binary of another platform (see README, "Single binary").
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? resolve(args[i + 1]) : dflt;
};
const out = flag('--out', join(root, 'dist', 'tsc-croc'));
const nodeBinary = flag('--node', process.execPath);
const require = createRequire(import.meta.url);

const work = mkdtempSync(join(tmpdir(), 'tsc-croc-sea-'));
try {
  const bundle = join(work, 'tsc-croc.cjs');
  const blob = join(work, 'sea-prep.blob');
  const esbuild = require('esbuild');
  esbuild.buildSync({
    entryPoints: [join(root, 'src', 'cli', 'binary-entry.ts')],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    outfile: bundle,
    minify: true,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  // esbuild leaves a dynamic import of a built-in module (node:https, node:readline) as import(), which a
  // SEA main (CommonJS, run without an ES module loader) cannot do: ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING
  const code = readFileSync(bundle, 'utf8').replace(/\bimport\((["'])(node:[a-z_/]+)\1\)/g, 'Promise.resolve().then(()=>require("$2"))');
  const left = code.match(/\bimport\(\s*["'`][^"'`]*["'`]\s*\)/);
  if (left) throw new Error(`the bundle still has a dynamic import a single executable cannot run: ${left[0]}`);
  writeFileSync(bundle, code);
  const config = join(work, 'sea-config.json');
  // useCodeCache: V8's compiled code for the bundle is stored in the binary (its start-up, measured in
  // the README); the code cache is only valid for the Node binary that makes the blob, so it is left
  // out when injecting into another one (--node)
  // (`--no-code-cache` leaves it out anyway, to measure what it brings: bench/README.md "Session 3")
  const sameNode = nodeBinary === process.execPath && !args.includes('--no-code-cache');
  // the browser page (dist/web, from `npm run build`), served by the binary's relay from its assets
  const web = join(root, 'dist', 'web');
  const pageFiles = ['index.html', 'app.js', 'app.css'];
  const assets = pageFiles.every((f) => existsSync(join(web, f))) ? Object.fromEntries(pageFiles.map((f) => [`web/${f}`, join(web, f)])) : undefined;
  if (assets === undefined) process.stderr.write('dist/web is not built (npm run build): the binary\'s relay will serve no page\n');
  writeFileSync(config, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: sameNode, ...(assets ? { assets } : {}) }));
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  mkdirSync(dirname(out), { recursive: true });
  const tmpOut = `${out}.tmp-${process.pid}`;
  copyFileSync(nodeBinary, tmpOut);
  chmodSync(tmpOut, 0o755);
  // the target's format from its first bytes: a Mach-O binary (macOS) takes the blob in a segment of its own
  const head = Buffer.alloc(4);
  const fd = openSync(tmpOut, 'r');
  readSync(fd, head, 0, 4, 0);
  closeSync(fd);
  const magic = head.toString('hex');
  const macho = ['cffaedfe', 'cefaedfe', 'cafebabe'].includes(magic);
  const sign = macho && process.platform === 'darwin';
  if (sign) execFileSync('codesign', ['--remove-signature', tmpOut], { stdio: 'inherit' });
  const postject = join(dirname(require.resolve('postject/package.json')), 'dist', 'cli.js');
  const pj = [postject, tmpOut, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'];
  if (macho) pj.push('--macho-segment-name', 'NODE_SEA');
  execFileSync(process.execPath, pj, { stdio: ['ignore', 'ignore', 'inherit'] });
  if (sign) execFileSync('codesign', ['--sign', '-', tmpOut], { stdio: 'inherit' });
  else if (macho) process.stderr.write(`a macOS binary: sign it on a Mac before running it (codesign --sign - ${out})\n`);
  // published under its final name only once complete
  execFileSync('mv', ['-f', tmpOut, out]);
  process.stdout.write(`${out}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
