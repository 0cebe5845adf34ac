/** scanSources on real temporary folders: order, metadata, skipped things, exclude, --git, scale. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TscCrocError } from '../src/core/errors.js';
import { MAX_DEPTH, WALK_PROGRESS_ENTRIES, scanSources, type Scan } from '../src/transfer/walk.js';
import { how, openUp } from './helpers/unprivileged.js';

const isCode = (code: string, text?: RegExp) => (e: unknown) =>
  e instanceof TscCrocError && e.code === code && (text === undefined || text.test(e.message));

async function tempRoot(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tsc-croc-walk-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  return root;
}

/** Create files (with content) and folders (names ending in '/') below `base`. */
async function tree(base: string, spec: Record<string, string>): Promise<void> {
  for (const [p, content] of Object.entries(spec)) {
    if (p.endsWith('/')) await mkdir(join(base, p), { recursive: true });
    else {
      await mkdir(join(base, p, '..'), { recursive: true });
      await writeFile(join(base, p), content);
    }
  }
}

const listing = (s: Scan) => [...s.entries].map((e) => (e.kind === 'dir' ? `${e.path}/` : e.path));

test('nested folders with unicode and spaces: depth-first, sorted, folders before their contents, empty folders kept', async (t) => {
  const root = await tempRoot(t);
  const src = join(root, 'my photos');
  await tree(src, {
    'b.txt': 'bb',
    'a dir/ünïcødé 文件.bin': 'xyz',
    'a dir/z/': '',
    'empty/': '',
    'a dir/sub folder/deep.txt': '1234',
    'c.txt': '',
  });
  const scan = await scanSources([src]);
  assert.deepEqual(scan.roots, ['my photos']);
  assert.deepEqual(listing(scan), [
    'my photos/',
    'my photos/a dir/',
    'my photos/a dir/sub folder/',
    'my photos/a dir/sub folder/deep.txt',
    'my photos/a dir/z/',
    'my photos/a dir/ünïcødé 文件.bin',
    'my photos/b.txt',
    'my photos/c.txt',
    'my photos/empty/',
  ]);
  assert.equal(scan.totalFiles, 4);
  assert.equal(scan.totalBytes, 2 + 3 + 4 + 0);
  assert.equal(scan.totalDirs, 5);
  assert.deepEqual(scan.skipped, []);
  for (const e of scan.entries) {
    assert.equal(e.abs, join(root, ...e.path.split('/')));
    if (e.kind === 'dir') assert.equal(e.size, 0);
  }
});

test('modes and mtimes come through', async (t) => {
  const root = await tempRoot(t);
  const src = join(root, 'src');
  await tree(src, { 'run.sh': '#!/bin/sh\n', 'sub/data': 'x' });
  await chmod(join(src, 'run.sh'), 0o751);
  await chmod(join(src, 'sub'), 0o700);
  // .5 s is exact in binary; Node's utimes stores 1600000000.123 s as ...122.999 ms, which rightly floors to 122.
  const when = new Date(1_600_000_000_500);
  await utimes(join(src, 'run.sh'), when, when);
  await utimes(join(src, 'sub'), new Date(1_500_000_000_000), new Date(1_500_000_000_000));
  const scan = await scanSources([src]);
  const byPath = new Map([...scan.entries].map((e) => [e.path, e]));
  assert.equal(byPath.get('src/run.sh')?.mode, 0o751);
  assert.equal(byPath.get('src/run.sh')?.mtimeMs, 1_600_000_000_500);
  assert.equal(byPath.get('src/run.sh')?.size, 10);
  assert.equal(byPath.get('src/sub')?.mode, 0o700);
  assert.equal(byPath.get('src/sub')?.mtimeMs, 1_500_000_000_000);
  assert.equal(byPath.get('src/sub')?.kind, 'dir');
});

test('a file argument gives one file entry named by its base name', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'deep/er/a.jpg': 'jpeg!' });
  const scan = await scanSources([join(root, 'deep/er/a.jpg')]);
  assert.deepEqual(scan.roots, ['a.jpg']);
  assert.equal(scan.entries.length, 1);
  assert.deepEqual({ ...scan.entries.get(0), mtimeMs: 0, mode: 0 }, {
    kind: 'file', path: 'a.jpg', abs: join(root, 'deep/er/a.jpg'), size: 5, mtimeMs: 0, mode: 0,
  });
  assert.equal(scan.totalFiles, 1);
  assert.equal(scan.totalBytes, 5);
});

test('several arguments keep their order; a relative argument resolves against the cwd', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'z.txt': 'z', 'a/1': '1' });
  const scan = await scanSources([join(root, 'z.txt'), join(root, 'a')]);
  assert.deepEqual(scan.roots, ['z.txt', 'a']);
  assert.deepEqual(listing(scan), ['z.txt', 'a/', 'a/1']);
  const cwd = process.cwd();
  process.chdir(join(root, 'a'));
  try {
    const here = await scanSources(['.', '../z.txt']);
    assert.deepEqual(here.roots, ['a', 'z.txt']);
    assert.deepEqual(listing(here), ['a/', 'a/1', 'z.txt']);
  } finally {
    process.chdir(cwd);
  }
});

test('symlinks inside folders are skipped, not followed: to a file, to a folder, a loop', async (t) => {
  const root = await tempRoot(t);
  const src = join(root, 'src');
  await tree(src, { 'real.txt': 'r', 'dir/inner.txt': 'i' });
  await tree(root, { 'outside/secret.txt': 's' });
  await symlink(join(src, 'real.txt'), join(src, 'to-file'));
  await symlink(join(root, 'outside'), join(src, 'to-dir'));
  await symlink(src, join(src, 'dir', 'loop'));
  await symlink('dangling-target', join(src, 'dangling'));
  const scan = await scanSources([src]);
  assert.deepEqual(listing(scan), ['src/', 'src/dir/', 'src/dir/inner.txt', 'src/real.txt']);
  assert.deepEqual(
    scan.skipped.map((s) => `${s.reason}:${s.path}`).sort(),
    ['symlink:src/dangling', 'symlink:src/dir/loop', 'symlink:src/to-dir', 'symlink:src/to-file'],
  );
});

test('a symlink given as an argument is followed and named by the link', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'target.txt': 'abc' });
  await symlink(join(root, 'target.txt'), join(root, 'link.txt'));
  const scan = await scanSources([join(root, 'link.txt')]);
  assert.deepEqual(listing(scan), ['link.txt']);
  assert.equal(scan.totalBytes, 3);
});

test('a fifo inside a folder is skipped as special; a fifo argument is refused', async (t) => {
  const root = await tempRoot(t);
  const src = join(root, 'src');
  await tree(src, { 'a.txt': 'a' });
  try {
    execFileSync('mkfifo', [join(src, 'pipe')], { stdio: 'ignore' });
  } catch {
    t.skip('mkfifo is not available');
    return;
  }
  const scan = await scanSources([src]);
  assert.deepEqual(listing(scan), ['src/', 'src/a.txt']);
  assert.deepEqual(scan.skipped, [{ path: 'src/pipe', reason: 'special' }]);
  await assert.rejects(scanSources([join(src, 'pipe')]), isCode('ERR_INVALID_ARGUMENT', /not a regular file or folder/));
});

test('names the recipient would refuse (control and bidi characters) are skipped as special', async (t) => {
  const root = await tempRoot(t);
  const src = join(root, 'src');
  await tree(src, { 'ok.txt': '', 'esc\u001b[31m.txt': '', 'bidi\u202egnp.exe': '', 'tab\tdir/x': '' });
  const scan = await scanSources([src]);
  assert.deepEqual(listing(scan), ['src/', 'src/ok.txt']);
  assert.deepEqual(
    scan.skipped.map((s) => s.reason),
    ['special', 'special', 'special'],
  );
});

/**
 * scanSources as a user whom chmod 000 stops: this process, or (as root) a child running as
 * nobody. Returns the listing and skipped entries, or the error's code and message.
 */
async function scanUnprivileged(t: { skip: (m: string) => void }, paths: string[], opts: { skipUnreadable?: boolean } = {}) {
  const who = how();
  if (who.kind === 'none') {
    t.skip(`unreadable files cannot be made here: ${who.why}`);
    return null;
  }
  if (who.kind === 'self') {
    try {
      const scan = await scanSources(paths, opts);
      return { listing: listing(scan), skipped: scan.skipped, error: null };
    } catch (e) {
      if (!(e instanceof TscCrocError)) throw e;
      return { listing: [], skipped: [], error: { code: e.code, message: e.message } };
    }
  }
  const walkJs = new URL('../src/transfer/walk.js', import.meta.url).href;
  const script = `
    const { scanSources } = await import(${JSON.stringify(walkJs)});
    const [paths, opts] = JSON.parse(process.argv[1]);
    try {
      const scan = await scanSources(paths, opts);
      console.log(JSON.stringify({ listing: [...scan.entries].map((e) => (e.kind === 'dir' ? e.path + '/' : e.path)), skipped: scan.skipped, error: null }));
    } catch (e) {
      console.log(JSON.stringify({ listing: [], skipped: [], error: { code: e.code, message: e.message } }));
    }`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify([paths, opts])], { uid: who.uid, gid: who.gid, encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out) as { listing: string[]; skipped: { path: string; reason: string; error?: string }[]; error: { code: string; message: string } | null };
}

test('an unreadable file, a folder that cannot be listed, a folder that cannot be entered: the walk fails naming them, or skipUnreadable leaves them out', async (t) => {
  const root = await tempRoot(t);
  openUp(root);
  const src = join(root, 'src');
  await tree(src, { 'locked/x.txt': 'x', 'noexec/f.txt': 'f', 'open/y.txt': 'y', 'secret.txt': 's', 'z.txt': 'z' });
  await chmod(join(src, 'locked'), 0o000);
  await chmod(join(src, 'noexec'), 0o644); // listable, not enterable: its file cannot be looked at
  await chmod(join(src, 'secret.txt'), 0o000);
  try {
    const failed = await scanUnprivileged(t, [src]);
    if (failed === null) return;
    assert.equal(failed.error?.code, 'ERR_INVALID_ARGUMENT');
    assert.match(failed.error.message, /^cannot read 3 files or folders: src\/locked \(EACCES\), src\/noexec\/f\.txt \(EACCES\), src\/secret\.txt \(EACCES\);.*--skip-unreadable/);
    const skipped = await scanUnprivileged(t, [src], { skipUnreadable: true });
    assert.deepEqual(skipped?.error, null);
    assert.deepEqual(skipped?.listing, ['src/', 'src/noexec/', 'src/open/', 'src/open/y.txt', 'src/z.txt']);
    assert.deepEqual(skipped?.skipped, [
      { path: 'src/locked', reason: 'unreadable', error: 'EACCES' },
      { path: 'src/noexec/f.txt', reason: 'unreadable', error: 'EACCES' },
      { path: 'src/secret.txt', reason: 'unreadable', error: 'EACCES' },
    ]);
  } finally {
    for (const d of ['locked', 'noexec']) await chmod(join(src, d), 0o700); // so that the cleanup (root or not) can remove them
  }
});

test('more than three unreadable files: three are named, then the count; an unreadable file argument always fails', async (t) => {
  const root = await tempRoot(t);
  openUp(root);
  const src = join(root, 'many');
  const spec: Record<string, string> = {};
  for (let i = 0; i < 7; i++) spec[`f${i}.txt`] = String(i);
  await tree(src, spec);
  for (let i = 0; i < 7; i++) await chmod(join(src, `f${i}.txt`), 0o000);
  const r = await scanUnprivileged(t, [src]);
  if (r === null) return;
  assert.match(r.error?.message ?? '', /^cannot read 7 files or folders: many\/f0\.txt \(EACCES\), many\/f1\.txt \(EACCES\), many\/f2\.txt \(EACCES\), and 4 more;/);
  const arg = await scanUnprivileged(t, [join(src, 'f3.txt')], { skipUnreadable: true });
  assert.equal(arg?.error?.code, 'ERR_INVALID_ARGUMENT');
  assert.match(arg?.error?.message ?? '', /^cannot read .*f3\.txt \(EACCES\)$/);
});

test(`folders nested deeper than ${MAX_DEPTH} are skipped as too deep, without recursion on the call stack`, async (t) => {
  const root = await tempRoot(t);
  const segments = Array.from({ length: MAX_DEPTH + 3 }, () => 'd');
  await mkdir(join(root, ...segments), { recursive: true });
  const scan = await scanSources([join(root, 'd')]);
  assert.equal(scan.totalDirs, MAX_DEPTH);
  assert.equal(scan.entries.at(-1)?.path, segments.slice(0, MAX_DEPTH).join('/'));
  assert.deepEqual(scan.skipped, [{ path: segments.slice(0, MAX_DEPTH + 1).join('/'), reason: 'too-deep' }]);
});

test("exclude patterns: '*.log' at any depth, 'build/' folders only (not descended), 'a/**/tmp' anchored", async (t) => {
  const root = await tempRoot(t);
  await tree(root, {
    'a/x.log': '',
    'a/keep.txt': '',
    'a/build/out.bin': '',
    'a/deep/build': 'a file named build is kept',
    'a/tmp/t1': '',
    'a/q/r/tmp/t2': '',
    'a/q/tmpx/t3': '',
    'a/q/deep.log': '',
  });
  const scan = await scanSources([join(root, 'a')], { exclude: ['*.log', 'build/', 'a/**/tmp'] });
  assert.deepEqual(listing(scan), [
    'a/',
    'a/deep/',
    'a/deep/build',
    'a/keep.txt',
    'a/q/',
    'a/q/r/',
    'a/q/tmpx/',
    'a/q/tmpx/t3',
  ]);
  assert.deepEqual(scan.skipped, []);
  // An argument itself is never excluded.
  const single = await scanSources([join(root, 'a/x.log')], { exclude: ['*.log'] });
  assert.deepEqual(listing(single), ['x.log']);
  // '?' and a pattern anchored to another root do not touch this one.
  const other = await scanSources([join(root, 'a')], { exclude: ['?.log', 'b/**/tmp', 'q'] });
  assert.deepEqual(listing(other).filter((p) => p.includes('tmp') || p.includes('/q')), ['a/tmp/', 'a/tmp/t1']);
  assert.ok(!listing(other).includes('a/x.log'));
});

test('--git: root .gitignore, a nested .gitignore negating a parent rule, .git skipped', async (t) => {
  const root = await tempRoot(t);
  const repo = join(root, 'repo');
  await tree(repo, {
    '.gitignore': '# comment\n*.log\nnode_modules/\n/dist\n',
    '.git/HEAD': 'ref: refs/heads/main\n',
    '.git/objects/ab/cdef': 'blob',
    'src/main.ts': 'x',
    'src/debug.log': 'x',
    'node_modules/pkg/index.js': 'x',
    'dist/out.js': 'x',
    'sub/dist/kept.js': 'x', // '/dist' is anchored to the root's folder
    'sub/.gitignore': '!keep.log\nsecret.txt\n',
    'sub/keep.log': 'x',
    'sub/other.log': 'x',
    'sub/secret.txt': 'x',
    'sub/inner/keep.log': 'x', // a pattern without '/' applies at any depth below its folder
    'top/secret.txt': 'x', // sub/.gitignore does not apply outside sub
  });
  const scan = await scanSources([repo], { git: true });
  assert.deepEqual(listing(scan), [
    'repo/',
    'repo/.gitignore',
    'repo/src/',
    'repo/src/main.ts',
    'repo/sub/',
    'repo/sub/.gitignore',
    'repo/sub/dist/',
    'repo/sub/dist/kept.js',
    'repo/sub/inner/',
    'repo/sub/inner/keep.log',
    'repo/sub/keep.log',
    'repo/top/',
    'repo/top/secret.txt',
  ]);
  // Without --git everything comes, .git included.
  const all = await scanSources([repo]);
  assert.ok(listing(all).includes('repo/.git/HEAD'));
  assert.ok(listing(all).includes('repo/node_modules/pkg/index.js'));
  assert.equal(all.totalFiles, 14);
});

test('--git: a deeper .gitignore can ignore what a parent negated', async (t) => {
  const root = await tempRoot(t);
  await tree(root, {
    'r/.gitignore': '*.tmp\n!important.tmp\n',
    'r/important.tmp': '',
    'r/x.tmp': '',
    'r/d/.gitignore': 'important.tmp\n',
    'r/d/important.tmp': '',
    'r/d/e/important.tmp': '',
  });
  const scan = await scanSources([join(root, 'r')], { git: true });
  assert.deepEqual(listing(scan), ['r/', 'r/.gitignore', 'r/d/', 'r/d/.gitignore', 'r/d/e/', 'r/important.tmp']);
});

test('arguments: missing refused, duplicate base names refused, "/" refused, empty list refused', async (t) => {
  const root = await tempRoot(t);
  await tree(root, { 'one/same.txt': '1', 'two/same.txt': '2', 'one/dir/': '', 'two/dir/': '' });
  await assert.rejects(scanSources([join(root, 'nope')]), isCode('ERR_INVALID_ARGUMENT', /^no such file: /));
  await assert.rejects(scanSources([join(root, 'one/same.txt/x')]), isCode('ERR_INVALID_ARGUMENT', /^no such file: /));
  await assert.rejects(
    scanSources([join(root, 'one/same.txt'), join(root, 'two/same.txt')]),
    isCode('ERR_INVALID_ARGUMENT', /^two arguments are named same\.txt$/),
  );
  await assert.rejects(scanSources([join(root, 'one/dir'), join(root, 'two/dir')]), isCode('ERR_INVALID_ARGUMENT', /named dir/));
  await assert.rejects(scanSources(['/']), isCode('ERR_INVALID_ARGUMENT', /no name/));
  await assert.rejects(scanSources([]), isCode('ERR_INVALID_ARGUMENT'));
});

test('20,000 files are scanned quickly, with exact counts', async (t) => {
  const root = await tempRoot(t);
  const big = join(root, 'big');
  const FOLDERS = 40;
  const PER_FOLDER = 500;
  const jobs: (() => Promise<void>)[] = [];
  let expectedBytes = 0;
  for (let d = 0; d < FOLDERS; d++) {
    await mkdir(join(big, `f${d}`), { recursive: true });
    for (let i = 0; i < PER_FOLDER; i++) {
      const size = (d * PER_FOLDER + i) % 7;
      expectedBytes += size;
      jobs.push(() => writeFile(join(big, `f${d}`, `file-${i}.dat`), 'x'.repeat(size)));
    }
  }
  for (let i = 0; i < jobs.length; i += 500) await Promise.all(jobs.slice(i, i + 500).map((j) => j()));

  const started = performance.now();
  const progress: number[] = [];
  const scan = await scanSources([big], { onProgress: (n) => progress.push(n) });
  const ms = performance.now() - started;
  t.diagnostic(`scanned ${scan.totalFiles} files in ${ms.toFixed(0)} ms`);
  assert.equal(scan.totalFiles, FOLDERS * PER_FOLDER);
  assert.equal(scan.totalDirs, FOLDERS + 1);
  assert.equal(scan.totalBytes, expectedBytes);
  assert.equal(scan.entries.length, FOLDERS * PER_FOLDER + FOLDERS + 1);
  assert.equal(scan.entries.get(1).path, 'big/f0');
  assert.equal(scan.entries.get(2).path, 'big/f0/file-0.dat');
  assert.equal(scan.entries.get(3).path, 'big/f0/file-1.dat');
  // the sender shows a long walk from these
  assert.deepEqual(progress, Array.from({ length: Math.floor(scan.entries.length / WALK_PROGRESS_ENTRIES) }, (_, i) => (i + 1) * WALK_PROGRESS_ENTRIES));
  assert.ok(ms < 8000, `took ${ms} ms`);
});

test('a name that is not valid UTF-8 is skipped as special; a real U+FFFD in a name is sent', async (t) => {
  const root = await tempRoot(t);
  const src = join(root, 'src');
  await tree(src, { 'sub/ok\uFFFD.txt': 'a', 'sub/plain.txt': 'b' });
  // the bytes 'bad' 0xff: not UTF-8 (decodes to 'bad\uFFFD', which must not be confused with the real one)
  await writeFile(Buffer.concat([Buffer.from(join(src, 'sub', 'bad')), Buffer.of(0xff)]), 'c');
  const scan = await scanSources([src]);
  assert.deepEqual(listing(scan), ['src/', 'src/sub/', 'src/sub/ok\uFFFD.txt', 'src/sub/plain.txt']);
  assert.deepEqual(scan.skipped, [{ path: 'src/sub/bad\uFFFD', reason: 'special' }]);
  const e = scan.entries.get(2);
  assert.equal(e.abs, join(src, 'sub', 'ok\uFFFD.txt'));
  assert.equal(e.size, 1);
});
