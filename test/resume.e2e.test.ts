/**
 * Resume and faults with real processes (issue 6): the built CLI as sender, recipient and relay,
 * killed with SIGKILL mid-transfer. Kills are triggered by the recipient's own progress events
 * (--json), never by timing. Files are compared by SHA-256.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, sha256File, startCliRelay, type Proc } from './helpers/cli.js';
import { withTmpfs } from './helpers/tmpfs.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-resume-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MB = 1000 * 1000;
let codes = 0;
/** A fresh code per transfer (the channel part must differ while an earlier channel is still held). */
const nextCode = () => `${4100 + codes++}-resume-test-words`;

/** Write `size` random bytes in 8 MB pieces (no 200 MB buffer). */
async function randomFile(path: string, size: number): Promise<void> {
  const piece = 8 * MB;
  const parts: Buffer[] = [];
  for (let n = 0; n < size; n += piece) parts.push(randomBytes(Math.min(piece, size - n)));
  await writeFile(path, parts);
}

/** The JSON events a CLI run printed with --json. */
function events(p: Proc): Record<string, unknown>[] {
  return p
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Every process started here: killed at the end, whatever happened, so none outlives a failed test. */
const started = new Set<Proc>();
after(() => {
  for (const p of started) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

/** A sender, and once its code is out, a recipient. */
async function pair(relay: string, what: string[], out: string, extra: string[] = []) {
  const code = nextCode();
  const sender = runCli(['send', '--relay', relay, '--no-local', '--json', ...extra, ...what], { env: { TSC_CROC_SECRET: code } });
  started.add(sender);
  await sender.waitFor(/"event":"code"/);
  const recipient = runCli(['receive', '--relay', relay, '--no-local', '--json', '--yes', '--out', out, ...extra], { env: { TSC_CROC_SECRET: code } });
  started.add(recipient);
  return { sender, recipient };
}

/** A progress event of at least `bytes` (one digit then zeros, e.g. 40 MB), as a regex on the --json output. */
function progressPast(bytes: number): RegExp {
  const digits = String(bytes);
  assert.match(digits, /^[1-9]0*$/);
  return new RegExp(`"event":"progress","bytes":([${digits[0]}-9]\\d{${digits.length - 1}}|[1-9]\\d{${digits.length},}),`);
}

const stateFiles = async (p: string) => (await readdir(p)).filter((n) => n.startsWith('.tsc-croc-'));

/** An empty output folder for one test. */
async function outFolder(name: string): Promise<string> {
  const out = join(dir, `out-${name}`);
  await mkdir(out);
  return out;
}

/** A random file `name` of `size` bytes to send, and an empty output folder. */
async function fileAndOut(name: string, size: number): Promise<{ src: string; out: string }> {
  const src = join(dir, name);
  await randomFile(src, size);
  return { src, out: await outFolder(name) };
}

test('kill -9 the recipient at about half of a 200 MB file; run both again: only the rest is sent, the hash matches', async (t) => {
  const relay = await startCliRelay();
  t.after(() => relay.stop());
  const { src, out } = await fileAndOut('big.bin', 200 * MB);

  const first = await pair(relay.url, [src], out, ['--reconnect', '0']);
  // the progress lines come every 200 ms, so the kill lands somewhat past this point
  await first.recipient.waitFor(progressPast(80 * MB), 60_000);
  first.recipient.child.kill('SIGKILL');
  await first.recipient.exit();
  assert.equal(await first.sender.exit(), 5, 'the sender, told not to wait for a reconnection, ends as a network failure');
  assert.match(first.sender.stderr(), /\[ERR_CONNECTION_LOST\]/);
  assert.ok(!(await readdir(out)).includes('big.bin'), 'nothing under the final name');
  assert.ok((await stateFiles(out)).some((n) => n.endsWith('.partial')), 'the partial file is kept');

  const second = await pair(relay.url, [src], out);
  const started = Date.now();
  assert.equal(await second.recipient.exit(60_000), 0, second.recipient.stderr());
  assert.equal(await second.sender.exit(), 0, second.sender.stderr());
  const seconds = (Date.now() - started) / 1000;
  assert.equal(await sha256File(join(out, 'big.bin')), await sha256File(src));
  assert.deepEqual(await stateFiles(out), [], 'no partial file, chunk log or journal is left');

  const offer = events(second.recipient).find((e) => e.event === 'offer')?.offer as { heldBytes: number };
  const start = events(second.sender).find((e) => e.event === 'file-start') as { offset: number };
  const done = events(second.sender).find((e) => e.event === 'done') as { resumedBytes: number };
  const resent = 200 * MB - done.resumedBytes;
  t.diagnostic(`second run: held ${offer.heldBytes} bytes, resumed at ${start.offset}, sent ${resent} of ${200 * MB} bytes (${((100 * resent) / (200 * MB)).toFixed(1)}%) in ${seconds.toFixed(2)} s`);
  assert.equal(start.offset, offer.heldBytes, 'the sender proved and used all the recipient held');
  assert.equal(done.resumedBytes, start.offset);
  assert.ok(start.offset >= 64 * MB, `what arrived before the kill was not sent again (resumed at ${start.offset})`);
  assert.ok(resent <= 136 * MB, `only the rest was sent the second time (${resent})`);
});

test('kill -9 the relay mid-transfer and restart it on the same ports: the transfer continues in the same session', async (t) => {
  let relay = await startCliRelay();
  t.after(() => relay.stop());
  const src = join(dir, 'relay-kill');
  await mkdir(src);
  // a.bin is one record (under 1 MiB: written whole); the relay dies once the sender has started
  // b.bin (its --json line), with the sender paused so that only what the queues hold still flows:
  // b.bin (120 MB) is then under way whatever the speed, a.bin complete
  await randomFile(join(src, 'a.bin'), 600_000);
  for (const n of ['b.bin', 'c.bin']) await randomFile(join(src, n), 120 * MB);
  const out = await outFolder('relay-kill');

  const run = await pair(relay.url, [src], out);
  await run.sender.waitFor(/"event":"file-start","path":"relay-kill\/b\.bin"/, 60_000);
  run.sender.child.kill('SIGSTOP');
  relay.proc.child.kill('SIGKILL');
  await relay.proc.exit();
  run.sender.child.kill('SIGCONT');
  // both sides notice and start reconnecting before the relay is back
  await run.recipient.waitFor(/"event":"reconnecting"/);
  await run.sender.waitFor(/"event":"reconnecting"/);
  relay = await startCliRelay({}, { http: relay.httpPort, tcp: relay.tcpPort });

  assert.equal(await run.recipient.exit(60_000), 0, run.recipient.stderr());
  assert.equal(await run.sender.exit(), 0, run.sender.stderr());
  for (const n of ['a.bin', 'b.bin', 'c.bin']) assert.equal(await sha256File(join(out, 'relay-kill', n)), await sha256File(join(src, n)), n);
  for (const p of [run.sender, run.recipient]) assert.ok(events(p).some((e) => e.event === 'reconnected'));
  const starts = events(run.sender).filter((e) => e.event === 'file-start') as { path: string; size: number; offset: number }[];
  const again = starts.slice(starts.findIndex((s, i) => i > 0 && s.path === 'relay-kill/a.bin'));
  assert.equal(again[0]?.path, 'relay-kill/a.bin', 'the second session starts over the list');
  assert.equal(again[0]!.offset, again[0]!.size, 'a file completed before the drop is not sent again');
  const resumed = again.find((s) => s.offset > 0 && s.offset < s.size);
  t.diagnostic(`after the relay restart: ${again.map((s) => `${s.path.split('/')[1]}@${s.offset}`).join(', ')}`);
  assert.ok(again.filter((s) => s.offset === 0).length <= 1, 'at most the file not yet started goes from 0');
  assert.ok(resumed !== undefined || again.every((s) => s.offset === s.size || s.path.endsWith('c.bin')), 'the file under way continued');
  assert.deepEqual(await stateFiles(out), []);
});

test('a relay restart while a folder of small files (under 1 MiB each) arrives: it continues too', async (t) => {
  let relay = await startCliRelay();
  t.after(() => relay.stop());
  const src = join(dir, 'small-files');
  await mkdir(src);
  for (let i = 0; i < 150; i++) await writeFile(join(src, `f${String(i).padStart(3, '0')}.bin`), randomBytes(900_000));
  const out = await outFolder('small-files');
  const run = await pair(relay.url, [src], out);
  // as in the test above: the relay dies with the sender paused, once it has started f040 (of 150)
  await run.sender.waitFor(/"event":"file-start","path":"small-files\/f040\.bin"/, 60_000);
  run.sender.child.kill('SIGSTOP');
  relay.proc.child.kill('SIGKILL');
  await relay.proc.exit();
  run.sender.child.kill('SIGCONT');
  await run.recipient.waitFor(/"event":"reconnecting"/);
  relay = await startCliRelay({}, { http: relay.httpPort, tcp: relay.tcpPort });
  assert.equal(await run.recipient.exit(60_000), 0, run.recipient.stderr());
  assert.equal(await run.sender.exit(), 0, run.sender.stderr());
  for (const n of await readdir(src)) assert.equal(await sha256File(join(out, 'small-files', n)), await sha256File(join(src, n)), n);
  assert.deepEqual(await stateFiles(join(out, 'small-files')), []);
});

test('the relay killed and not back: both sides say so (exit 6), the partial is kept, and the next run resumes', async (t) => {
  const relay = await startCliRelay();
  const { src, out } = await fileAndOut('relay-gone.bin', 160 * MB);

  const run = await pair(relay.url, [src], out, ['--reconnect', '2']);
  await run.recipient.waitFor(progressPast(1_000_000), 60_000); // the first progress line: see the sender-killed test
  relay.proc.child.kill('SIGKILL');
  await relay.proc.exit();
  assert.equal(await run.recipient.exit(), 6, run.recipient.stderr());
  assert.equal(await run.sender.exit(), 6, run.sender.stderr());
  for (const p of [run.sender, run.recipient]) {
    const lines = p.stderr().trim().split('\n');
    assert.match(lines.at(-1)!, /lost the relay mid-transfer and it did not come back within 2 s; .*run the same command again to resume \[ERR_RELAY_LOST\]/);
  }
  assert.ok((await stateFiles(out)).some((n) => n.endsWith('.partial')));

  const relay2 = await startCliRelay();
  t.after(() => relay2.stop());
  const again = await pair(relay2.url, [src], out);
  assert.equal(await again.recipient.exit(60_000), 0, again.recipient.stderr());
  assert.equal(await again.sender.exit(), 0, again.sender.stderr());
  assert.equal(await sha256File(join(out, 'relay-gone.bin')), await sha256File(src));
  const start = events(again.sender).find((e) => e.event === 'file-start') as { offset: number };
  assert.ok(start.offset > 0, 'resumed');
});

test('the sender killed mid-transfer: the recipient waits for it, then says so (exit 7), partial kept', async (t) => {
  const relay = await startCliRelay();
  t.after(() => relay.stop());
  const { src, out } = await fileAndOut('peer-gone.bin', 120 * MB);
  const run = await pair(relay.url, [src], out, ['--reconnect', '1']);
  // the first progress line (--json prints the first at once, then one per 200 ms): at a few
  // hundred MB/s, waiting for a later one can let the whole file arrive before the kill
  await run.recipient.waitFor(progressPast(1_000_000), 60_000);
  run.sender.child.kill('SIGKILL');
  await run.sender.exit();
  assert.equal(await run.recipient.exit(), 7, run.recipient.stderr());
  assert.match(run.recipient.stderr(), /the sender did not come back within 1 s; what arrived is kept: run the same command again to resume \[ERR_PEER_LOST\]/);
  assert.ok((await stateFiles(out)).some((n) => n.endsWith('.partial')));
});

/**
 * A send of `src` whose recipient is killed (-9) once it received `bytes`, then the same commands
 * again: the second run, both ends exited 0.
 */
async function killedThenAgain(url: string, src: string, out: string, bytes: number): Promise<Awaited<ReturnType<typeof pair>>> {
  const first = await pair(url, [src], out, ['--reconnect', '0']);
  await first.recipient.waitFor(progressPast(bytes), 60_000);
  first.recipient.child.kill('SIGKILL');
  await first.recipient.exit();
  await first.sender.exit();
  const second = await pair(url, [src], out);
  assert.equal(await second.recipient.exit(60_000), 0, second.recipient.stderr());
  assert.equal(await second.sender.exit(), 0, second.sender.stderr());
  return second;
}

test('a folder interrupted midway: files already received are not sent again, the one in progress continues', async (t) => {
  const relay = await startCliRelay();
  t.after(() => relay.stop());
  const src = join(dir, 'album');
  await mkdir(join(src, 'sub'), { recursive: true });
  const names = ['a.bin', 'b.bin', 'c.bin', 'sub/d.bin', 'sub/e.bin', 'sub/f.bin'];
  for (const n of names) await randomFile(join(src, n), 40 * MB);
  const out = await outFolder('album');

  const second = await killedThenAgain(relay.url, src, out, 60 * MB);
  for (const n of names) assert.equal(await sha256File(join(out, 'album', n)), await sha256File(join(src, n)), n);
  const starts = events(second.sender).filter((e) => e.event === 'file-start') as { path: string; size: number; offset: number }[];
  const skipped = starts.filter((s) => s.offset === s.size).length;
  const done = events(second.sender).find((e) => e.event === 'done') as { resumedBytes: number };
  t.diagnostic(`second run: ${skipped} of ${names.length} files already complete, ${done.resumedBytes} of ${240 * MB} bytes not sent again`);
  assert.ok(skipped >= 1, `files received in the first run are not sent again (${skipped})`);
  assert.ok(done.resumedBytes >= 50 * MB, `${done.resumedBytes}`);
  assert.deepEqual(await stateFiles(out), []);
  assert.deepEqual(await stateFiles(join(out, 'album')), []);
  assert.deepEqual(await stateFiles(join(out, 'album', 'sub')), []);
});

test('a folder of small files (batches, protocol v3) interrupted midway: every file of the batches is proven and not sent again', async (t) => {
  const relay = await startCliRelay();
  t.after(() => relay.stop());
  const src = join(dir, 'notes');
  await mkdir(join(src, 'b'), { recursive: true });
  // 600 files of 1-10 KB (walked first: batches), then a large one to be cut in
  const small = Array.from({ length: 600 }, (_, i) => (i < 300 ? `a${String(i).padStart(4, '0')}.txt` : `b/${String(i).padStart(4, '0')}.txt`));
  for (const [i, n] of small.entries()) await writeFile(join(src, n), randomBytes(1000 + ((i * 37) % 9000)));
  await randomFile(join(src, 'z.bin'), 120 * MB);
  const out = await outFolder('notes');

  const second = await killedThenAgain(relay.url, src, out, 20 * MB); // the small files (~3.3 MB) and part of z.bin
  for (const n of [...small, 'z.bin']) assert.equal(await sha256File(join(out, 'notes', n)), await sha256File(join(src, n)), n);
  const starts = events(second.sender).filter((e) => e.event === 'file-start') as { path: string; size: number; offset: number }[];
  const proven = new Set(starts.filter((s) => s.offset === s.size).map((s) => s.path));
  t.diagnostic(`second run: ${proven.size} of ${small.length + 1} files already complete`);
  // every small file came in a batch of the first run: each is announced, proven by its digest, and not sent again
  for (const n of small) assert.ok(proven.has(`notes/${n}`), `notes/${n} was sent again`);
  // nothing else is sent (z.bin, resumed, unless it was complete before the kill)
  assert.deepEqual(starts.filter((s) => s.offset < s.size && s.path !== 'notes/z.bin'), []);
  assert.deepEqual(await stateFiles(out), []);
  assert.deepEqual(await stateFiles(join(out, 'notes')), []);
  assert.deepEqual(await stateFiles(join(out, 'notes', 'b')), []);
});

test('an output folder that cannot be written: one clear line, exit 9', async (t) => {
  const relay = await startCliRelay();
  t.after(() => relay.stop());
  const mnt = join(dir, 'read-only');
  await withTmpfs(t, mnt, 'ro,size=4m', async () => {
    const src = join(dir, 'small.txt');
    await writeFile(src, 'hello');
    const run = await pair(relay.url, [src], mnt);
    assert.equal(await run.recipient.exit(), 9, run.recipient.stderr());
    assert.match(run.recipient.stderr(), /the output folder is not writable \[ERR_NOT_WRITABLE\]/);
    assert.equal(run.recipient.stderr().trim().split('\n').filter((l) => l.startsWith('tsc-croc:')).length, 1);
    assert.notEqual(await run.sender.exit(), 0);
    assert.match(run.sender.stderr(), /the recipient failed: the output folder is not writable/);
  });
});

test('a disk too small for the offer: one clear line, exit 8, nothing written, nothing else touched', async (t) => {
  const relay = await startCliRelay();
  t.after(() => relay.stop());
  const mnt = join(dir, 'small-disk');
  await withTmpfs(t, mnt, 'size=2m', async () => {
    await writeFile(join(mnt, 'already-there.txt'), 'keep me');
    const src = join(dir, 'too-big.bin');
    await randomFile(src, 6 * MB);
    const run = await pair(relay.url, [src], mnt);
    assert.equal(await run.recipient.exit(), 8, run.recipient.stderr());
    const lines = run.recipient.stderr().split('\n').filter((l) => l.startsWith('tsc-croc:'));
    assert.equal(lines.length, 1);
    // refused before anything is written (docs/protocol.md §6.6); a disk that fills up later is faults.test.ts's
    assert.match(lines[0]!, /not enough space in .*: this transfer needs \d+\.\d MiB .*, \d+\.\d MiB is free; nothing was written \[ERR_DISK_FULL\]/);
    assert.notEqual(await run.sender.exit(), 0);
    assert.match(run.sender.stderr(), /declined/);
    assert.deepEqual(await readdir(mnt), ['already-there.txt'], 'nothing written, not even a journal');
  });
});
