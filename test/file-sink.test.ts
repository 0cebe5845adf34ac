/** FileSink on a real file system: symlinks, existing files, temporary names, small files in the background. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, statfs, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TscCrocError } from '../src/core/errors.js';
import type { DirMessage, FileMessage } from '../src/core/messages.js';
import { FileSink, SPACE_MARGIN_BYTES } from '../src/transfer/file-sink.js';
import { findHeld, loadPartial } from '../src/transfer/resume-store.js';

const MiB = 1024 * 1024;
const msg = (path: string, size: number): FileMessage => ({ type: 'file', path, size, offset: 0, mode: 0o644, mtime: 1_600_000_000_000 });
const isCode = (code: string) => (e: unknown) => e instanceof TscCrocError && e.code === code;

async function dirs() {
  const root = await mkdtemp(join(tmpdir(), 'tsc-croc-sink-'));
  await mkdir(join(root, 'out'));
  await mkdir(join(root, 'elsewhere'));
  return { root, out: join(root, 'out'), elsewhere: join(root, 'elsewhere') };
}

test('a symlinked folder below the output folder is never written through', async (t) => {
  const { root, out, elsewhere } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  await symlink(elsewhere, join(out, 'link'));
  const sink = new FileSink(out, true);
  await assert.rejects(sink.open(msg('link/x', 1), ['link', 'x']), isCode('ERR_UNSAFE_PATH'));
  assert.deepEqual(await readdir(elsewhere), []);
});

test('a symlink under the final name: refused without overwrite, replaced (not followed) with it', async (t) => {
  const { root, out, elsewhere } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  await writeFile(join(elsewhere, 'target'), 'precious');
  await symlink(join(elsewhere, 'target'), join(out, 'a.txt'));
  const data = Buffer.from('new');
  await assert.rejects(new FileSink(out, false).open(msg('a.txt', 3), ['a.txt']), isCode('ERR_FILE_EXISTS'));
  const sink = new FileSink(out, true);
  await sink.open(msg('a.txt', 3), ['a.txt']);
  await sink.write([data]);
  await sink.commit();
  await sink.flush();
  assert.equal(await readFile(join(out, 'a.txt'), 'utf8'), 'new');
  assert.equal(await readFile(join(elsewhere, 'target'), 'utf8'), 'precious', 'the link target is untouched');
});

test('pieces are written in order; a file dropped before its end leaves nothing behind', async (t) => {
  const { root, out } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  const parts = [Buffer.from('hello '), Buffer.from('big '), Buffer.from('world')];
  const whole = Buffer.concat(parts);
  const sink = new FileSink(out, false);
  await sink.open(msg('ok.txt', whole.length), ['ok.txt']);
  await sink.write(parts.slice(0, 2));
  await sink.write(parts.slice(2));
  const done = await sink.commit();
  assert.equal(done.size, whole.length);
  await sink.flush();
  assert.ok((await readFile(join(out, 'ok.txt'))).equals(whole));

  for (const size of [3, 3 * MiB]) {
    await sink.open(msg(`bad${size}`, size), [`bad${size}`]);
    await sink.write([Buffer.from('abc')]);
    assert.equal(await sink.abort(false), null);
  }
  await sink.finishAll();
  assert.deepEqual(await readdir(out), ['ok.txt'], 'no partial file, and the journal goes once the transfer completes');
});

test('abort keeps partial data of a large file under a temporary name only when asked, with its checkpoint', async (t) => {
  const { root, out } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  const sink = new FileSink(out, false);
  await sink.open(msg('a.bin', 3 * MiB), ['a.bin']);
  await sink.write([Buffer.alloc(MiB + 5, 1)]);
  const kept = await sink.abort(true);
  assert.ok(kept?.endsWith('.partial'));
  const partials = async () => (await readdir(out)).filter((n) => n.endsWith('.partial'));
  assert.equal((await partials()).length, 1);
  const held = await loadPartial(out, 'a.bin');
  assert.equal(held?.offset, MiB + 5, 'the checkpoint says all that arrived is on disk');
  await sink.open(msg('b.bin', 3 * MiB), ['b.bin']);
  await sink.write([Buffer.alloc(MiB + 5, 1)]);
  assert.equal(await sink.abort(false), null);
  assert.deepEqual(await partials(), [kept!.split('/').at(-1)], 'the dropped partial is gone');
  // a small file is only in memory until its end: nothing to keep
  await sink.open(msg('c.bin', 10), ['c.bin']);
  await sink.write([Buffer.alloc(5, 1)]);
  assert.equal(await sink.abort(true), null);
  assert.equal((await partials()).length, 1);
});

test('a partial with no byte in it after a failure is removed, with its checkpoint and its journal; one with bytes is kept to resume', async (t) => {
  const { root, out } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  const offer = { names: ['big.bin', 'd', 'kept.bin'], totalFiles: 3, totalDirs: 1, totalBytes: 9 * MiB };
  const state = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith('.tsc-croc-')).sort();
  const sink = new FileSink(out, false);
  await sink.checkOutDir();
  // a top-level file that failed before its first byte (a lost connection, a stall, a frame too large):
  // nothing to resume, so no partial, no checkpoint, no journal
  await sink.open(msg('big.bin', 3 * MiB), ['big.bin']);
  assert.equal((await state(out)).length, 3, 'partial, checkpoint and journal while it is open');
  assert.equal(await sink.abort(true), null);
  assert.deepEqual(await state(out), []);
  // the same in a folder: the partial and its checkpoint go; the folder (and its journal) go when the
  // transfer fails for good, as empty
  await sink.makeDir(dirMsg('d'), ['d']);
  await sink.open(msg('d/big.bin', 3 * MiB), ['d', 'big.bin']);
  assert.equal(await sink.abort(true), null);
  assert.deepEqual(await state(join(out, 'd')), []);
  assert.equal(await sink.removeEmptyFolders(), 1);
  assert.deepEqual(await readdir(out), []);
  // a partial with bytes is kept, and announced to the sender on the next run
  await sink.open(msg('kept.bin', 3 * MiB), ['kept.bin']);
  await sink.write([Buffer.alloc(5, 7)]);
  const kept = await sink.abort(true);
  assert.ok(kept?.endsWith('.partial'));
  assert.equal((await state(out)).length, 3, 'partial, checkpoint and journal stay');
  const { have } = await findHeld(out, offer);
  assert.deepEqual(have.map((h) => [h.path, h.offset, h.whole]), [['kept.bin', 5, false]]);
});

test('checkOutDir: a missing output folder is created with its parents; one through a file, or a file, is refused', async (t) => {
  const { root, out } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  assert.equal(await new FileSink(out, false).checkOutDir(), false, 'it exists: nothing created');
  assert.equal(await new FileSink(join(out, 'new', 'deeper'), false).checkOutDir(), true);
  assert.deepEqual(await readdir(join(out, 'new')), ['deeper']);
  await writeFile(join(out, 'plain'), 'x');
  await assert.rejects(new FileSink(join(out, 'plain', 'sub', 'dir'), false).checkOutDir(), (e: unknown) =>
    isCode('ERR_INVALID_ARGUMENT')(e) && /cannot create the output folder .*plain\/sub\/dir: .*\/plain is not a folder$/.test((e as Error).message));
  await assert.rejects(new FileSink(join(out, 'plain'), false).checkOutDir(), (e: unknown) => isCode('ERR_INVALID_ARGUMENT')(e) && /is not a folder$/.test((e as Error).message));
  await symlink(join(root, 'nowhere'), join(out, 'dangling'));
  await assert.rejects(new FileSink(join(out, 'dangling'), false).checkOutDir(), (e: unknown) => isCode('ERR_INVALID_ARGUMENT')(e) && /a symlink to nothing$/.test((e as Error).message));
});

test('mtimes survive to the millisecond (a float seconds value must not land just below it)', async (t) => {
  const { root, out } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  const { stat } = await import('node:fs/promises');
  const sink = new FileSink(out, false);
  const data = Buffer.from('x');
  for (const mtime of [1_600_000_000_123, 1_700_000_000_001, 1_234_567_890_999]) {
    const name = `f${mtime}`;
    await sink.open({ ...msg(name, 1), mtime }, [name]);
    await sink.write([data]);
    await sink.commit();
    await sink.flush();
    assert.equal(Math.floor((await stat(join(out, name))).mtimeMs), mtime);
  }
});

test('many small files are published in the background, all of them, and flush() waits for them', async (t) => {
  const { root, out } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  const sink = new FileSink(out, false);
  await sink.makeDir({ type: 'dir', path: 'd', mode: 0o755, mtime: 1_600_000_000_000 }, ['d']);
  for (let i = 0; i < 200; i++) {
    const data = Buffer.from(`file ${i}`);
    await sink.open(msg(`d/${i}.txt`, data.length), ['d', `${i}.txt`]);
    await sink.write([data]);
    await sink.commit();
  }
  await sink.finishDirs();
  const names = await readdir(join(out, 'd'));
  assert.equal(names.length, 200);
  assert.ok(names.every((n) => !n.endsWith('.partial')));
  assert.equal(await readFile(join(out, 'd', '199.txt'), 'utf8'), 'file 199');
});

test('a checkpoint of this boot offers the whole partial; of another boot, only its durable count', async (t) => {
  const { root, out } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  const { Checkpoint, stateName } = await import('../src/transfer/resume-store.js');
  const data = Buffer.alloc(3 * MiB, 7);
  await writeFile(join(out, stateName('p.bin', 'partial')), data);
  await new Checkpoint(out, 'p.bin').record(MiB);
  const same = await loadPartial(out, 'p.bin');
  if (!(await readFile('/proc/sys/kernel/random/boot_id').catch(() => null))) {
    t.diagnostic('no boot id here: every rerun counts as after a reboot');
    assert.equal(same?.offset, MiB);
    return;
  }
  assert.equal(same?.offset, 3 * MiB, 'a killed process loses nothing the kernel had');
  // the same checkpoint written in another boot: bytes past the durable count may be spoilt
  const cp = join(out, stateName('p.bin', 'checkpoint'));
  const raw = await readFile(cp);
  raw[raw.length - 1] = raw[raw.length - 1]! ^ 0xff;
  await writeFile(cp, raw);
  const other = await loadPartial(out, 'p.bin');
  assert.equal(other?.offset, MiB);
  // the digest is that of the offered prefix
  const { ChunkHasher } = await import('../src/core/chunk-digest.js');
  const h = new ChunkHasher();
  h.update(data.subarray(0, MiB));
  assert.equal(other?.digest, h.digest());
  // a checkpoint that is not ours (wrong length or magic) offers nothing
  await writeFile(cp, raw.subarray(1));
  assert.equal(await loadPartial(out, 'p.bin'), null);
});

test('small files in an output folder on tmpfs (synchronous fdatasync): content, mode, time, no partial, no overwrite', async (t) => {
  const { statfs, stat } = await import('node:fs/promises');
  const shm = '/dev/shm';
  const onTmpfs = await statfs(shm).then((s) => s.type === 0x01021994, () => false);
  if (!onTmpfs) {
    t.skip('no tmpfs at /dev/shm');
    return;
  }
  const root = await mkdtemp(join(shm, 'tsc-croc-sink-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const sink = new FileSink(root, false);
  await sink.checkOutDir();
  const files = Array.from({ length: 40 }, (_, i) => ({ path: `d/f${i}`, data: Buffer.alloc(100 + i, i) }));
  await sink.makeDir({ type: 'dir', path: 'd', mode: 0o755, mtime: 1_600_000_000_000 }, ['d']);
  for (const f of files) {
    await sink.open({ ...msg(f.path, f.data.length), mode: 0o600 }, f.path.split('/'));
    await sink.write([f.data.subarray(0, 10), f.data.subarray(10)]);
    await sink.commit();
  }
  await sink.flush();
  for (const f of files) {
    assert.ok((await readFile(join(root, f.path))).equals(f.data), f.path);
    const st = await stat(join(root, f.path));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(Math.floor(st.mtimeMs), 1_600_000_000_000);
  }
  assert.deepEqual((await readdir(join(root, 'd'))).filter((n) => n.startsWith('.tsc-croc-')), [], 'no partial left');
  // a file that appeared under a final name meanwhile is not replaced
  await writeFile(join(root, 'd', 'late'), 'theirs');
  await sink.open(msg('d/late', 3), ['d', 'late']);
  await sink.write([Buffer.from('new')]);
  await sink.commit().catch(() => undefined);
  await assert.rejects(sink.flush(), isCode('ERR_FILE_EXISTS'));
  assert.equal(await readFile(join(root, 'd', 'late'), 'utf8'), 'theirs');
});

const dirMsg = (path: string): DirMessage => ({ type: 'dir', path, mode: 0o755, mtime: 1_600_000_000_000 });

test('checkRoom: an offer beyond the free space is refused, bytes already held count as held, a block per entry is kept', async (t) => {
  const { root, out } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  const sink = new FileSink(out, false);
  await sink.checkOutDir();
  const st = await statfs(out);
  const free = st.bavail * st.bsize;
  const GiB = 1024 ** 3;
  await assert.rejects(sink.checkRoom(free + GiB, 0, 1), (e: unknown) => isCode('ERR_DISK_FULL')(e) && /needs .* is free; nothing was written/.test((e as Error).message));
  // the same offer, of which an interrupted run holds 2 GiB: fits
  await sink.checkRoom(free + GiB, 2 * GiB, 1);
  // a small offer fits; one that fills the disk to the last byte does not (the margin, a block per file)
  await sink.checkRoom(1000, 0, 1);
  await assert.rejects(sink.checkRoom(free - SPACE_MARGIN_BYTES / 2, 0, 1), isCode('ERR_DISK_FULL'));
  assert.deepEqual(await readdir(out), [], 'checking writes nothing');
});

test('removeEmptyFolders: only the empty folders this sink created go, never through a symlink', async (t) => {
  const { root, out, elsewhere } = await dirs();
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(out, 'pre', 'old'), { recursive: true });
  await mkdir(join(elsewhere, 'target'));
  const sink = new FileSink(out, true);
  await sink.checkOutDir();
  for (const p of ['a', 'a/b', 'a/b/c', 'a/swap', 'a/full', 'pre', 'pre/new']) await sink.makeDir(dirMsg(p), p.split('/'));
  // something else fills one, and swaps another for a symlink to a folder elsewhere
  await writeFile(join(out, 'a', 'full', 'theirs.txt'), 'not ours');
  await rename(join(out, 'a', 'swap'), join(root, 'swapped-away'));
  await symlink(join(elsewhere, 'target'), join(out, 'a', 'swap'));
  assert.equal(await sink.removeEmptyFolders(), 3, 'a/b/c, a/b and pre/new');
  assert.deepEqual((await readdir(join(out, 'a'))).sort(), ['full', 'swap']);
  assert.deepEqual(await readdir(join(out, 'pre')), ['old'], 'a folder that existed before stays');
  assert.deepEqual(await readdir(join(elsewhere)), ['target'], 'the symlink was not followed');
});
