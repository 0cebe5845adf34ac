/**
 * Unreadable files and the output folder, end to end through the built CLI and a real relay:
 * an unreadable file stops the sender before a code is shown (exit 2, naming it), or
 * --skip-unreadable leaves it out and lists it; a file that becomes unreadable mid-transfer fails
 * cleanly; a missing --out folder is created, one through a file is refused (exit 2), one that
 * cannot be created is ERR_NOT_WRITABLE (exit 9); a partial of an odd length is resumed from its
 * exact length.
 *
 * chmod 000 does not stop root: as root the sender (or the recipient, for exit 9) runs as
 * nobody (helpers/unprivileged.ts); the tests skip with the reason only when neither works.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, sha256File, startCliRelay } from './helpers/cli.js';
import { how, openUp } from './helpers/unprivileged.js';
import { FileSink } from '../src/transfer/file-sink.js';
import { offerId } from '../src/transfer/resume-store.js';

let relay: Awaited<ReturnType<typeof startCliRelay>>;
let dir: string;
/** A config folder every user can read (runCli's own is private to this user). */
let config: string;

before(async () => {
  relay = await startCliRelay();
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-walkfix-'));
  openUp(dir);
  config = join(dir, 'config');
  await mkdir(config);
  openUp(config);
});

after(async () => {
  const code = await relay.stop();
  assert.equal(code, 0, `relay exit code ${code}\n${relay.proc.stderr()}`);
  await rm(dir, { recursive: true, force: true });
});

/** The command prefix that runs the CLI as a user whom chmod 000 stops; null (test skipped) if there is none. */
function unprivileged(t: { skip: (m: string) => void }): string[] | null {
  const who = how();
  if (who.kind === 'none') {
    t.skip(`unreadable files cannot be made here: ${who.why}`);
    return null;
  }
  return who.kind === 'self' ? [] : ['setpriv', `--reuid=${who.uid}`, `--regid=${who.gid}`, '--clear-groups'];
}

/** A source folder `docs` (readable by every user) with these files, and an empty output folder. */
async function fixture(name: string, files: Record<string, Buffer>) {
  const src = join(dir, `${name}-src`);
  const out = join(dir, `${name}-out`);
  await mkdir(out);
  for (const [p, data] of Object.entries(files)) {
    await mkdir(join(src, 'docs', p, '..'), { recursive: true });
    await writeFile(join(src, 'docs', p), data);
  }
  return { src, out, docs: join(src, 'docs') };
}

const receiveArgs = (out: string) => ['receive', '--no-local', '--relay', relay.url, '--yes', '--out', out];

test('an unreadable file stops the sender before any code is shown: exit 2, the line names it and the flag; no recipient needed', async (t) => {
  const wrap = unprivileged(t);
  if (wrap === null) return;
  const { docs } = await fixture('stop', { 'a.txt': Buffer.from('a'), 'secret.txt': Buffer.from('s'), 'sub/b.txt': Buffer.from('b') });
  await chmod(join(docs, 'secret.txt'), 0o000);
  const sender = runCli(['send', '--no-local', '--relay', relay.url, docs], { wrap, env: { XDG_CONFIG_HOME: config } });
  assert.equal(await sender.exit(), 2, sender.output());
  assert.doesNotMatch(sender.output(), /Code is|Connecting/, 'nothing was announced');
  assert.match(sender.stderr(), /^tsc-croc: cannot read 1 file or folder: docs\/secret\.txt \(EACCES\); fix the permissions, or leave them out with --skip-unreadable \[ERR_INVALID_ARGUMENT\]$/m);
  t.diagnostic(sender.stderr().trim());
});

test('--skip-unreadable: the unreadable file and folder are listed and left out, the rest arrives identical', async (t) => {
  const wrap = unprivileged(t);
  if (wrap === null) return;
  const files = { 'a.txt': randomBytes(100), 'big.bin': randomBytes(3 * 1024 * 1024), 'secret.txt': Buffer.from('s'), 'locked/in.txt': Buffer.from('i'), 'sub/c.txt': randomBytes(10) };
  const { docs, out } = await fixture('skip', files);
  await chmod(join(docs, 'secret.txt'), 0o000);
  await chmod(join(docs, 'locked'), 0o000);
  t.after(() => chmod(join(docs, 'locked'), 0o755));
  const sender = runCli(['send', '--no-local', '--relay', relay.url, '--skip-unreadable', docs], { wrap, env: { XDG_CONFIG_HOME: config } });
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(receiveArgs(out), { env: { TSC_CROC_SECRET: code! } });
  const [rc, sc] = await Promise.all([recipient.exit(), sender.exit()]);
  assert.equal(rc, 0, recipient.output());
  assert.equal(sc, 0, sender.output());
  const listed = sender.stderr().split('\n').filter((l) => /left out/.test(l));
  assert.deepEqual(listed, [
    'tsc-croc: warning: left out, cannot be read: docs/locked',
    'tsc-croc: warning: left out, cannot be read: docs/secret.txt',
    'tsc-croc: warning: left out 2 files or folders that cannot be read (--skip-unreadable)',
  ]);
  // listed before the code
  assert.ok(sender.stderr().indexOf('left out 2') < sender.stderr().indexOf('Connecting'), sender.stderr());
  assert.deepEqual((await readdir(join(out, 'docs'))).sort(), ['a.txt', 'big.bin', 'sub']);
  for (const p of ['a.txt', 'big.bin', 'sub/c.txt']) assert.equal(await sha256File(join(out, 'docs', p)), await sha256File(join(docs, p)), p);
  t.diagnostic(listed.join('\n'));
});

test('a file that becomes unreadable after the walk fails the transfer with a clear line; the recipient keeps what arrived, and no partial', async (t) => {
  const wrap = unprivileged(t);
  if (wrap === null) return;
  const { docs, out } = await fixture('mid', { 'a.txt': randomBytes(50), 'b.bin': randomBytes(3 * 1024 * 1024), 'c.txt': randomBytes(50) });
  const sender = runCli(['send', '--no-local', '--relay', relay.url, docs], { wrap, env: { XDG_CONFIG_HOME: config } });
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  // the walk is over once the code is shown: b.bin could be read then, and now cannot
  await chmod(join(docs, 'b.bin'), 0o000);
  const recipient = runCli(receiveArgs(out), { env: { TSC_CROC_SECRET: code! } });
  const [rc, sc] = await Promise.all([recipient.exit(), sender.exit()]);
  assert.equal(sc, 1, sender.output());
  assert.match(sender.stderr(), /^tsc-croc: cannot open .*docs\/b\.bin \(EACCES\): it became unreadable after the transfer started; fix its permissions and run the same command again .*\[ERR_IO\]$/m);
  assert.equal(rc, 1, recipient.output());
  assert.match(recipient.stderr(), /the sender failed: a file could not be read or written on its side \(what arrived is kept: run the same commands again to resume\) \[ERR_PEER_ERROR\]/);
  // a.txt arrived; b.bin was never started (the sender failed to open it before announcing it)
  const kept = (await readdir(join(out, 'docs'))).sort();
  assert.deepEqual(kept, ['a.txt']);
  assert.equal(await sha256File(join(out, 'docs', 'a.txt')), await sha256File(join(docs, 'a.txt')));
  // the journal of docs stays beside it, so that the same command again resumes without asking
  const state = (await readdir(out)).filter((n) => n.startsWith('.tsc-croc-'));
  assert.equal(state.length, 1, `one journal: ${state.join(', ')}`);
  assert.match(state[0]!, /\.journal$/);
  t.diagnostic(`sender: ${sender.stderr().trim().split('\n').at(-1)}\nrecipient: ${recipient.stderr().trim().split('\n').at(-1)}\nrecipient keeps: docs/a.txt, ${state[0]}`);
});

test('--out naming a missing folder: created with its parents, and the file arrives', async (t) => {
  const { docs, out } = await fixture('mkout', { 'a.txt': randomBytes(1000) });
  const target = join(out, 'new', 'deeper');
  const sender = runCli(['send', '--no-local', '--relay', relay.url, join(docs, 'a.txt')]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(receiveArgs(target), { env: { TSC_CROC_SECRET: code! } });
  const [rc, sc] = await Promise.all([recipient.exit(), sender.exit()]);
  assert.equal(rc, 0, recipient.output());
  assert.equal(sc, 0, sender.output());
  assert.match(recipient.stderr(), new RegExp(`^Created folder ${target.replaceAll('/', '\\/')}$`, 'm'));
  assert.equal(await sha256File(join(target, 'a.txt')), await sha256File(join(docs, 'a.txt')));
  t.diagnostic(recipient.stderr().split('\n')[0]!);
});

test('--out through a regular file: exit 2 with one clear line, before joining; one that cannot be created: exit 9', async (t) => {
  const { out } = await fixture('badout', {});
  await writeFile(join(out, 'plain'), 'x');
  const through = runCli(receiveArgs(join(out, 'plain', 'sub')), { env: { TSC_CROC_SECRET: '9-abc-def-ghi' } });
  assert.equal(await through.exit(), 2, through.output());
  assert.match(through.stderr(), /^tsc-croc: cannot create the output folder .*\/plain\/sub: .*\/plain is not a folder \[ERR_INVALID_ARGUMENT\]$/m);
  assert.doesNotMatch(through.stderr(), /Connecting/);
  t.diagnostic(through.stderr().trim());
  const wrap = unprivileged(t);
  if (wrap === null) return;
  // a folder this user may not write in (as root: nobody in a folder of root's, 0755)
  const locked = join(out, 'locked');
  await mkdir(locked, { mode: 0o755 });
  await chmod(locked, 0o555);
  t.after(() => chmod(locked, 0o755));
  const denied = runCli(receiveArgs(join(locked, 'sub')), { wrap, env: { TSC_CROC_SECRET: '9-abc-def-ghi', XDG_CONFIG_HOME: config } });
  assert.equal(await denied.exit(), 9, denied.output());
  assert.match(denied.stderr(), /^tsc-croc: cannot create the output folder .*\/locked\/sub \(EACCES\): the output folder is not writable \[ERR_NOT_WRITABLE\]$/m);
  t.diagnostic(denied.stderr().trim());
});

test('resuming from a partial whose length is not a multiple of 1 MiB: the sender continues from exactly that byte (docs/protocol.md §6.5)', async (t) => {
  const MiB = 1024 * 1024;
  const data = randomBytes(3 * MiB);
  const { docs, out } = await fixture('odd', { 'big.bin': data });
  const file = join(docs, 'big.bin');
  // what an interrupted run left: a partial of 1 MiB + 12,345 bytes, its checkpoint, its journal
  const held = MiB + 12_345;
  const sink = new FileSink(out, false);
  await sink.checkOutDir();
  sink.resumeFrom(['big.bin'], offerId({ names: ['big.bin'], totalFiles: 1, totalDirs: 0, totalBytes: data.length }), new Map(), new Set());
  await sink.open({ type: 'file', path: 'big.bin', size: data.length, offset: 0, mode: 0o644, mtime: 0 }, ['big.bin']);
  await sink.write([data.subarray(0, held)]);
  assert.ok(await sink.abort(true));
  const sender = runCli(['send', '--no-local', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli([...receiveArgs(out), '--json'], { env: { TSC_CROC_SECRET: code! } });
  const [rc, sc] = await Promise.all([recipient.exit(), sender.exit()]);
  assert.equal(rc, 0, recipient.output());
  assert.equal(sc, 0, sender.output());
  const start = recipient.stdout().split('\n').filter((l) => l.includes('"file-start"')).map((l) => JSON.parse(l) as { offset: number });
  assert.deepEqual(start.map((s) => s.offset), [held]);
  assert.equal(await sha256File(join(out, 'big.bin')), await sha256File(file));
  assert.deepEqual((await readdir(out)).sort(), ['big.bin'], 'no state left');
});
