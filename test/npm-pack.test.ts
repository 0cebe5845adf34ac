/**
 * The npm package as a user gets it: `npm pack`, then `npm install -g` of the tarball into a scratch
 * prefix, the installed `tsc-croc` runs a relay, a send and a receive on loopback (files compared
 * by hash), and `npm exec --package <tarball> -- tsc-croc` (what `npx` does) answers --version.
 * The registry is needed for the dependencies (the npm cache is used first); skipped only when npm
 * itself is missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, sha256File, spawnWatched, type Proc } from './helpers/cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const npmMissing = spawnSync('npm', ['--version'], { encoding: 'utf8' }).error !== undefined;

/** The environment for npm and the installed command: none of `npm test`'s npm_* settings, no TSC_CROC_* of the machine. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !k.startsWith('TSC_CROC_')) env[k] = v;
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

/** Run a command to its end, bounded; rejects with its output on a non-zero exit. */
function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; ms?: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env, timeout: opts.ms ?? 120_000, maxBuffer: 16 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n--- stdout:\n${stdout}\n--- stderr:\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Start the installed command (its output watched, waits bounded). */
function start(bin: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  return spawnWatched(bin, args, { env, label: `tsc-croc ${args.join(' ')}` });
}

test('npm pack, npm install -g of the tarball, then the installed tsc-croc relays, sends and receives; npx from the tarball', { skip: npmMissing && 'npm is not on PATH: the packed install cannot be tested', timeout: 240_000 }, async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
  // the build (npm test's, npm run build's) left the bin executable
  assert.ok(((await stat(CLI)).mode & 0o111) !== 0, `${CLI} is not executable after the build`);
  const scratch = await mkdtemp(join(tmpdir(), 'tsc-croc-npm-'));
  try {
    // --ignore-scripts: prepare would rebuild dist/ under the other test files running now
    const packed = JSON.parse(await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], { cwd: ROOT, env: cleanEnv() })) as { filename: string; files: { path: string; mode: number }[] }[];
    const info = packed[0]!;
    const files = new Map(info.files.map((f) => [f.path, f.mode]));
    for (const f of ['package.json', 'README.md', 'LICENSE', pkg.bin['tsc-croc']!, 'dist/src/index.js', 'dist/src/index.d.ts'])
      assert.ok(files.has(f), `${f} is not in the package`);
    assert.ok((files.get(pkg.bin['tsc-croc']!)! & 0o111) !== 0, 'the bin is packed executable');
    // everything the bundle loads is in the package (by relative import), or is one of its dependencies (by name)
    const pkgDeps = new Set(Object.keys((JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies));
    const bundled = [pkg.bin['tsc-croc']!, 'dist/tsc-croc-cli.cjs'];
    for (const f of bundled) {
      assert.ok(files.has(f), `${f} is not in the package`);
      const text = await readFile(join(ROOT, f), 'utf8');
      for (const m of text.matchAll(/(?:from ?|import\(|require\()"(\.{1,2}\/[^"]+)"/g)) {
        const target = join(f, '..', m[1]!);
        assert.ok(files.has(target), `${f} imports ${m[1]} (${target}), which is not in the package`);
      }
      for (const m of text.matchAll(/(?:from ?|import\(|require\()"((?:@[^/"]+\/)?[^./"][^/"]*)[^"]*"/g)) {
        if (m[1]!.startsWith('node:')) continue;
        assert.ok(pkgDeps.has(m[1]!), `${f} loads the package ${m[1]}, which is not a dependency`);
      }
    }
    assert.ok(![...files.keys()].some((f) => f.startsWith('dist/test/') || f.startsWith('src/')), 'no tests or sources in the package');
    const tgz = join(scratch, info.filename);

    // npm install -g into a scratch prefix
    const prefix = join(scratch, 'prefix');
    await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', tgz], { cwd: scratch, env: cleanEnv() });
    const bin = join(prefix, 'bin', 'tsc-croc');
    assert.equal(await run(bin, ['--version'], { cwd: scratch, env: cleanEnv(), ms: 30_000 }), `${pkg.version}\n`);

    // a relay, a send and a receive through the installed command, on loopback only
    const config = join(scratch, 'config');
    const src = join(scratch, 'src');
    const out = join(scratch, 'out');
    await Promise.all([mkdir(config), mkdir(src), mkdir(out)]);
    const env = cleanEnv({ XDG_CONFIG_HOME: config, TSC_CROC_INTERFACES: 'lo' });
    const file = join(src, 'payload.bin');
    await writeFile(file, randomBytes(3 * 1024 * 1024 + 17));
    const relay = start(bin, ['relay', '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', '--quiet'], env);
    try {
      const [, port] = await relay.waitFor(/HTTP on 127\.0\.0\.1:(\d+)/, 30_000);
      const url = `http://127.0.0.1:${port}`;
      const sender = start(bin, ['send', '--relay', url, '--no-local', '--no-progress', file], env);
      const [, code] = await sender.waitFor(/Code is: (\S+)/, 30_000);
      const recipient = start(bin, ['receive', '--relay', url, '--no-local', '--no-progress', '--yes', '--out', out], { ...env, TSC_CROC_SECRET: code });
      assert.equal(await recipient.exit(60_000), 0, recipient.output());
      assert.equal(await sender.exit(60_000), 0, sender.output());
      assert.equal(await sha256File(join(out, 'payload.bin')), await sha256File(file));
    } finally {
      relay.child.kill('SIGTERM');
      await relay.exit(40_000);
    }

    // npx: `npm exec --package <tarball>` in an empty folder
    const empty = join(scratch, 'npx');
    await mkdir(empty);
    assert.equal((await run('npm', ['exec', '--yes', '--package', tgz, '--', 'tsc-croc', '--version'], { cwd: empty, env: cleanEnv() })).trim(), pkg.version);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});
