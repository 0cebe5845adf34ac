/**
 * Consent per existing name (docs/protocol.md §6.6): the `skip` and `plan` messages in both state
 * machines, hostile peers included, then the real CLI on a pseudo-terminal answering
 * `[y/n/a/q]` for each name that is already there.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TscCrocError } from '../src/core/errors.js';
import { PROTOCOL_VERSION, parseMessage, type HaveEntry, type OfferMessage, type RecipientMessage } from '../src/core/messages.js';
import { initialRecipientState, recipientStep, type RecipientState } from '../src/core/recipient-machine.js';
import { senderStart, senderStep, type SenderState } from '../src/core/sender-machine.js';
import { parseConsent } from '../src/cli/prompt-consent.js';
import { stateName } from '../src/transfer/resume-store.js';
import { runCli, sha256File, startCliRelay } from './helpers/cli.js';
import { haveScript, onTerminal } from './helpers/terminal.js';
import { startPeerRelay } from './helpers/relay.js';
import { parseCode } from '../src/core/code-phrase.js';
import { RecordType, recordPayload } from '../src/core/record.js';
import { send } from '../src/transfer/send.js';
import { recipientPake } from '../src/transfer/pake.js';
import { RelayClient } from '../src/transfer/relay-client.js';
import { SecureChannel } from '../src/transfer/secure-channel.js';
import { connectStapled } from '../src/transfer/tcp.js';

const digest = 'd'.repeat(64);
const protocol = (re: RegExp) => (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_PROTOCOL' && re.test(e.message);
/** a: a folder with a/x (5 bytes); b: a file of 7; c: a file of 3. */
const offer: OfferMessage = { type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: 3, totalDirs: 1, totalBytes: 15, names: ['a', 'b', 'c'] };
const file = (path: string, size: number, offset = 0) => ({ kind: 'message', message: { type: 'file', path, size, offset, mode: 0o644, mtime: 0 } }) as const;
const msg = (m: object) => ({ kind: 'message', message: m }) as Parameters<typeof recipientStep>[1];

/** The recipient after answering the offer with `skip` (and `have`). */
function skipping(skip: string[], have: HaveEntry[] = []) {
  const s1 = recipientStep(initialRecipientState, { kind: 'message', message: offer }).state;
  return recipientStep(s1, { kind: 'decision', accept: true, have, skip });
}
const plan = (totalFiles: number, totalDirs: number, totalBytes: number) => msg({ type: 'plan', totalFiles, totalDirs, totalBytes });
/** Feed inputs in order; returns the last state. */
function feed(state: RecipientState, inputs: Parameters<typeof recipientStep>[1][]): RecipientState {
  for (const i of inputs) state = recipientStep(state, i).state;
  return state;
}

test('recipient: have (not under a skipped name), skip, accept; then the plan bounds the transfer exactly', () => {
  const have: HaveEntry[] = [
    { path: 'a/x', offset: 5, digest, whole: true },
    { path: 'c', offset: 3, digest, whole: true },
  ];
  const { state, effects } = skipping(['c'], have);
  assert.equal(state.name, 'await-plan');
  assert.deepEqual(
    effects.map((e) => (e.kind === 'send' ? e.message : e)),
    [{ type: 'have', entries: [have[0]] }, { type: 'skip', names: ['c'] }, { type: 'accept' }],
    'the entry under the skipped name c is not announced',
  );
  const planned = recipientStep(state, plan(2, 1, 12));
  assert.deepEqual(planned.effects, [{ kind: 'plan', plan: { totalFiles: 2, totalDirs: 1, totalBytes: 12 } }]);
  const done = feed(planned.state, [
    msg({ type: 'dir', path: 'a', mode: 0o755, mtime: 0 }),
    file('a/x', 5, 5),
    msg({ type: 'file-end' }),
    file('b', 7),
    { kind: 'data', length: 7 },
    msg({ type: 'file-end' }),
    msg({ type: 'done' }),
  ]);
  assert.equal(done.name, 'await-end');
  // no skip: no plan is expected, and none is accepted
  const s1 = recipientStep(initialRecipientState, { kind: 'message', message: offer }).state;
  const plain = recipientStep(s1, { kind: 'decision', accept: true, skip: [] });
  assert.deepEqual(plain.effects, [{ kind: 'send', message: { type: 'accept' } }]);
  assert.throws(() => recipientStep(plain.state, plan(1, 0, 1)), protocol(/unexpected "plan"/));
  // a skip of a name not offered is our caller's bug, not the sender's
  assert.throws(() => recipientStep(s1, { kind: 'decision', accept: true, skip: ['zzz'] }), TypeError);
});

test('recipient: a hostile sender after our skip is refused (no plan, plan above the offer, a skipped path, more than planned, done short of the plan)', () => {
  const after = () => skipping(['c']).state;
  const planned = () => recipientStep(after(), plan(2, 1, 12)).state;
  assert.throws(() => recipientStep(after(), file('b', 7)), protocol(/expected "plan" after our "skip"/));
  assert.throws(() => recipientStep(after(), msg({ type: 'done' })), protocol(/expected "plan"/));
  assert.throws(() => recipientStep(after(), plan(4, 1, 12)), protocol(/planned 4 files, 1 folders and 12 bytes, more than the 3, 1 and 15 offered/));
  assert.throws(() => recipientStep(after(), plan(3, 2, 12)), protocol(/more than/));
  assert.throws(() => recipientStep(after(), plan(3, 1, 16)), protocol(/more than/));
  // a second plan
  assert.throws(() => recipientStep(planned(), plan(2, 1, 12)), protocol(/unexpected "plan"/));
  // the skipped name, or anything under it, even within the plan's counts
  assert.throws(() => recipientStep(planned(), file('c', 3)), protocol(/"c" is under a name we skipped/));
  const skipA = recipientStep(skipping(['a']).state, plan(2, 1, 10)).state;
  assert.throws(() => recipientStep(skipA, msg({ type: 'dir', path: 'a', mode: 0o755, mtime: 0 })), protocol(/"a" is under a name we skipped/));
  assert.throws(() => recipientStep(skipA, file('a/x', 5)), protocol(/"a\/x" is under a name we skipped/));
  // more than planned, though within the offer
  const small = () => recipientStep(after(), plan(1, 0, 7)).state;
  assert.throws(() => recipientStep(feed(small(), [file('b', 7), { kind: 'data', length: 7 }, msg({ type: 'file-end' })]), file('a', 1)), protocol(/more files than planned/));
  assert.throws(() => recipientStep(small(), msg({ type: 'dir', path: 'a', mode: 0o755, mtime: 0 })), protocol(/more folders than planned/));
  assert.throws(() => recipientStep(small(), file('b', 8)), protocol(/more bytes than planned/));
  // done before the plan is complete
  assert.throws(() => recipientStep(small(), msg({ type: 'done' })), protocol(/sent 0 files, 0 folders and 0 bytes, but planned 1, 0 and 7/));
  // every name kept: a plan of nothing is a transfer of nothing
  const none = recipientStep(skipping(['a', 'b', 'c']).state, plan(0, 0, 0)).state;
  assert.equal(recipientStep(none, msg({ type: 'done' })).state.name, 'await-end');
});

test('sender: have and skip are checked against the offer; the accept names the skipped names in offer order', () => {
  const start = () => senderStart(offer);
  const step = (s: SenderState, m: object) => senderStep(s, { kind: 'message', message: m as RecipientMessage });
  let s = start();
  s = step(s, { type: 'have', entries: [{ path: 'a/x', offset: 5, digest, whole: true }] }).state;
  s = step(s, { type: 'skip', names: ['c', 'b'] }).state;
  const accepted = step(s, { type: 'accept' });
  assert.deepEqual(accepted.effects, [{ kind: 'start-sending', skipped: ['b', 'c'] }]);
  assert.deepEqual(step(start(), { type: 'accept' }).effects, [{ kind: 'start-sending', skipped: [] }]);
  // hostile recipients
  const have = (...paths: string[]) => ({ type: 'have', entries: paths.map((path) => ({ path, offset: 1, digest, whole: false })) });
  assert.throws(() => step(start(), { type: 'skip', names: ['zzz'] }), protocol(/"skip" names "zzz", which was not offered/));
  assert.throws(() => step(start(), { type: 'skip', names: ['a', 'a'] }), protocol(/"skip" names a name twice/));
  assert.throws(() => step(step(start(), { type: 'skip', names: ['a'] }).state, { type: 'skip', names: ['b'] }), protocol(/a second "skip"/));
  assert.throws(() => step(step(start(), have('a/x')).state, { type: 'skip', names: ['a'] }), protocol(/"have" for "a\/x", under a name it skipped/));
  assert.throws(() => step(step(start(), { type: 'skip', names: ['a'] }).state, have('a/x')), protocol(/under a name it skipped/));
  assert.throws(() => step(step(start(), { type: 'accept' }).state, { type: 'skip', names: ['a'] }), protocol(/"skip" after the offer was answered/));
  const text = senderStart({ kind: 'text', totalFiles: 0, names: [] });
  assert.throws(() => step(text, { type: 'skip', names: ['a'] }), protocol(/"skip" for a text/));
  // the error texts of have (protocol issue 12): a duplicate path is named as such
  assert.throws(() => step(start(), have('a/x', 'a/x')), protocol(/"have" names "a\/x" twice/));
  assert.throws(() => step(step(start(), have('a/x')).state, have('a/x')), protocol(/"have" names "a\/x" twice/));
  assert.throws(() => step(start(), have('a/x', 'b', 'c', 'd')), protocol(/more "have" entries than the 3 files offered/));
});

test('parse: skip and plan; a have entry without whole, or with an extra field, says so', () => {
  const raw = (o: unknown) => Buffer.from(JSON.stringify(o));
  assert.deepEqual(parseMessage(raw({ type: 'skip', names: ['a'] }), 'recipient'), { type: 'skip', names: ['a'] });
  assert.deepEqual(parseMessage(raw({ type: 'plan', totalFiles: 1, totalDirs: 0, totalBytes: 5 }), 'sender'), { type: 'plan', totalFiles: 1, totalDirs: 0, totalBytes: 5 });
  const bad = (o: unknown, from: 'sender' | 'recipient', re: RegExp) =>
    assert.throws(() => parseMessage(raw(o), from), (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_PROTOCOL' && re.test(e.message), JSON.stringify(o));
  bad({ type: 'have', entries: [{ path: 'a', offset: 1, digest }] }, 'recipient', /a 'have' entry lacks 'whole'/);
  bad({ type: 'have', entries: [{ path: 'a', offset: 1, digest, whole: true, x: 1 }] }, 'recipient', /a 'have' entry has an unexpected field "x"/);
  bad({ type: 'skip', names: [] }, 'recipient', /'names' must be a list of 1\.\.2048/);
  bad({ type: 'skip', names: new Array(2049).fill('a') }, 'recipient', /'names' must be a list/);
  bad({ type: 'skip', names: [''] }, 'recipient', /'names' entries/);
  bad({ type: 'skip', names: ['a'] }, 'sender', /unexpected message type from the sender/);
  bad({ type: 'plan', totalFiles: 1, totalDirs: 0, totalBytes: 5 }, 'recipient', /unexpected message type from the recipient/);
  bad({ type: 'plan', totalFiles: 1, totalDirs: 0 }, 'sender', /'plan' lacks 'totalBytes'/);
  bad({ type: 'plan', totalFiles: -1, totalDirs: 0, totalBytes: 0 }, 'sender', /'totalFiles' must be an integer/);
  // a hostile key is shown escaped and cut short
  bad({ type: 'done', ['\u001b[2J'.repeat(40)]: 1 }, 'sender', /^[^\u001b]*'done' has an unexpected field "(\\u001b\[2J){8}"$/);
  bad({ type: 'done', ['rtl\u202e']: 1 }, 'sender', /'done' has an unexpected field "rtl\?"$/);
});

test('the answers of the [y/n/a/q] prompt', () => {
  for (const [a, want] of [['y', 'replace'], [' YES ', 'replace'], ['n', 'skip'], ['no', 'skip'], ['a', 'all'], ['q', 'quit'], ['', null], ['x', null]] as const)
    assert.equal(parseConsent(a), want, JSON.stringify(a));
});

// ---- the real CLI on a pseudo-terminal ----

let relay: Awaited<ReturnType<typeof startCliRelay>>;
let dir: string;
const hasScript = haveScript();

before(async () => {
  relay = await startCliRelay();
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-consent-'));
});
after(async () => {
  assert.equal(await relay.stop(), 0);
  await rm(dir, { recursive: true, force: true });
});

/** A sender of three names (a.bin, photos/ with two files, c.bin), and an output folder holding old a.bin and photos/. */
async function scene(name: string) {
  const src = join(dir, `${name}-src`);
  const out = join(dir, `${name}-out`);
  await mkdir(join(src, 'photos'), { recursive: true });
  await mkdir(join(out, 'photos'), { recursive: true });
  await writeFile(join(src, 'a.bin'), randomBytes(200_000));
  await writeFile(join(src, 'photos', 'p1.jpg'), randomBytes(1500));
  await writeFile(join(src, 'photos', 'p2.jpg'), randomBytes(2500));
  await writeFile(join(src, 'c.bin'), randomBytes(3000));
  await writeFile(join(out, 'a.bin'), 'old a\n');
  await writeFile(join(out, 'photos', 'p1.jpg'), 'old p1\n');
  return { src, out, args: ['a.bin', 'photos', 'c.bin'].map((n) => join(src, n)) };
}

/** The recipient on a pseudo-terminal (script(1)), with the code in its environment: we read its screen and type answers. */
const recipientOnTerminal = (args: string[], code: string) => onTerminal(args, { configHome: dir, env: { NO_COLOR: '1', TSC_CROC_SECRET: code } });

async function sending(args: string[]) {
  const sender = runCli(['send', '--relay', relay.url, '--no-local', ...args]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  return { sender, code: code! };
}

test('on a terminal: y replaces a.bin, n keeps photos (not sent, the sender names it), c.bin arrives', async (t) => {
  if (!hasScript) return t.skip('no `script` (util-linux) here to give the recipient a terminal');
  const { src, out, args } = await scene('yn');
  // an interrupted run of another offer left a journal vouching for photos/p1.jpg: kept with photos,
  // its entry is not announced (the sender would refuse a "have" under a skipped name)
  const p1 = await stat(join(out, 'photos', 'p1.jpg'));
  const journal = join(out, stateName('photos', 'journal'));
  const lines = `{"created":false,"offer":"${'0'.repeat(32)}"}\n{"done":"photos/p1.jpg","size":${p1.size},"mtime":${Math.floor(p1.mtimeMs)}}\n`;
  await writeFile(journal, lines, { mode: 0o600 });
  const { sender, code } = await sending(args);
  const r = recipientOnTerminal(['receive', '--relay', relay.url, '--no-local', '--out', out], code);
  await r.answer(/Accept 4 files in 1 folder [^\n]*already here: a\.bin, photos[^\n]*\[y\/N\] /, 'y\r');
  await r.answer(/a\.bin already exists here: replace it\? \[y\/n\/a\/q\] /, 'y\r');
  await r.answer(/photos already exists here: replace it\? \[y\/n\/a\/q\] /, 'n\r');
  assert.equal(await r.exit(), 0, r.screen());
  assert.equal(await sender.exit(), 0, sender.output());
  t.diagnostic(`recipient's screen:\n${r.plain()}`);
  t.diagnostic(`sender's stderr:\n${sender.stderr()}`);
  assert.equal(await sha256File(join(out, 'a.bin')), await sha256File(join(src, 'a.bin')), 'replaced: the new bytes');
  assert.equal(await sha256File(join(out, 'c.bin')), await sha256File(join(src, 'c.bin')), 'not there before: arrived');
  assert.equal(await readFile(join(out, 'photos', 'p1.jpg'), 'utf8'), 'old p1\n', 'kept: the old bytes');
  assert.deepEqual(await readdir(join(out, 'photos')), ['p1.jpg'], 'nothing under a kept name was written');
  assert.deepEqual((await readdir(out)).sort(), [stateName('photos', 'journal'), 'a.bin', 'c.bin', 'photos'].sort(), 'no state files left but the kept name\'s own');
  assert.equal(await readFile(journal, 'utf8'), lines, 'what is under a kept name is left as it was');
  assert.match(sender.stderr(), /The recipient already has and kept: photos\n/);
  // the sender's summary counts what was sent: a.bin and c.bin
  assert.match(sender.stderr(), /Done: 2 files, 203\.0 kB( \(in [^)]*\))?\./);
  assert.match(r.plain(), /Done: 2 files, 203\.0 kB( \(in [^)]*\))?\./);
  assert.match(r.plain(), /Kept what was already here \(not received\): photos/);
});

test('on a terminal: q declines the whole transfer (exit 4 on both sides, nothing written)', async (t) => {
  if (!hasScript) return t.skip('no `script` (util-linux) here to give the recipient a terminal');
  const { out, args } = await scene('q');
  const { sender, code } = await sending(args);
  const r = recipientOnTerminal(['receive', '--relay', relay.url, '--no-local', '--out', out], code);
  await r.answer(/\[y\/N\] /, 'y\r');
  await r.answer(/a\.bin already exists here: replace it\? \[y\/n\/a\/q\] /, 'y\r');
  await r.answer(/photos already exists here: replace it\? \[y\/n\/a\/q\] /, 'q\r');
  assert.equal(await r.exit(), 4, r.screen());
  assert.equal(await sender.exit(), 4, sender.output());
  t.diagnostic(`recipient's screen:\n${r.plain()}`);
  assert.match(r.plain(), /you declined the transfer \[ERR_DECLINED\]/);
  assert.match(sender.stderr(), /declined/);
  assert.equal(await readFile(join(out, 'a.bin'), 'utf8'), 'old a\n', 'an earlier y is void after q');
  assert.deepEqual((await readdir(out)).sort(), ['a.bin', 'photos']);
});

test('on a terminal: a replaces this name and all the rest without asking again; an unknown answer is asked again', async (t) => {
  if (!hasScript) return t.skip('no `script` (util-linux) here to give the recipient a terminal');
  const { src, out, args } = await scene('a');
  const { sender, code } = await sending(args);
  const r = recipientOnTerminal(['receive', '--relay', relay.url, '--no-local', '--out', out], code);
  await r.answer(/\[y\/N\] /, 'y\r');
  await r.answer(/a\.bin already exists here: replace it\? \[y\/n\/a\/q\] /, 'maybe\r');
  await r.answer(/Answer y \(replace it\), n \(keep yours[^\n]*\n[^]*a\.bin already exists here: replace it\? \[y\/n\/a\/q\] /, 'a\r');
  assert.equal(await r.exit(), 0, r.screen());
  assert.equal(await sender.exit(), 0, sender.output());
  t.diagnostic(`recipient's screen:\n${r.plain()}`);
  assert.doesNotMatch(r.plain(), /photos already exists/, 'not asked about the rest');
  for (const p of ['a.bin', 'c.bin', 'photos/p1.jpg', 'photos/p2.jpg']) assert.equal(await sha256File(join(out, p)), await sha256File(join(src, p)), p);
  assert.doesNotMatch(sender.stderr(), /kept/);
  assert.match(sender.stderr(), /Done: 4 files, 207\.0 kB( \(in [^)]*\))?\./);
});

test('--skip-existing (no terminal): what is here is kept, the rest arrives; every name kept: nothing sent, both succeed', async () => {
  const { src, out, args } = await scene('skip');
  const { sender, code } = await sending(args);
  const recipient = runCli(['receive', '--relay', relay.url, '--no-local', '--yes', '--skip-existing', '--out', out], { env: { TSC_CROC_SECRET: code } });
  assert.equal(await recipient.exit(), 0, recipient.output());
  assert.equal(await sender.exit(), 0, sender.output());
  assert.equal(await readFile(join(out, 'a.bin'), 'utf8'), 'old a\n');
  assert.deepEqual(await readdir(join(out, 'photos')), ['p1.jpg']);
  assert.equal(await sha256File(join(out, 'c.bin')), await sha256File(join(src, 'c.bin')));
  assert.match(sender.stderr(), /The recipient already has and kept: a\.bin, photos\n/);
  assert.match(sender.stderr(), /Done: 1 file, 3\.0 kB( \(in [^)]*\))?\./);
  assert.match(recipient.stderr(), /Kept what was already here \(not received\): a\.bin, photos/);
  // again: now every name is here; --json shows the sender's skipped event
  const again = runCli(['send', '--relay', relay.url, '--no-local', '--json', ...args]);
  const [, code2] = await again.waitFor(/"code":"([^"]+)"/);
  const r2 = runCli(['receive', '--relay', relay.url, '--no-local', '--json', '--yes', '--skip-existing', '--out', out], { env: { TSC_CROC_SECRET: code2! } });
  assert.equal(await r2.exit(), 0, r2.output());
  assert.equal(await again.exit(), 0, again.output());
  assert.match(again.stdout(), /\{"event":"skipped","names":\["a\.bin","photos","c\.bin"\]\}/);
  assert.equal(r2.stdout().match(/"event":"skipped"/g)?.length, 1, r2.stdout());
  assert.match(again.stdout(), /\{"event":"done","kind":"files","files":0,"bytes":0,"resumedBytes":0,"movedBytes":0\}/);
  // --overwrite and --skip-existing together: a usage error
  const both = runCli(['receive', '--relay', relay.url, '--no-local', '--overwrite', '--skip-existing'], { env: { TSC_CROC_SECRET: code2! } });
  assert.equal(await both.exit(), 2, both.output());
});

test('on a terminal: Ctrl-C at the [y/n/a/q] prompt cancels cleanly, the error on a line of its own', async (t) => {
  if (!hasScript) return t.skip('no `script` (util-linux) here to give the recipient a terminal');
  const { out, args } = await scene('ctrl-c');
  const { sender, code } = await sending(args);
  const r = recipientOnTerminal(['receive', '--relay', relay.url, '--no-local', '--out', out], code);
  await r.answer(/\[y\/N\] /, 'y\r');
  await r.answer(/a\.bin already exists here: replace it\? \[y\/n\/a\/q\] /, '\u0003');
  assert.equal(await r.exit(), 4, r.screen());
  assert.equal(await sender.exit(), 4, sender.output());
  t.diagnostic(`recipient's screen:\n${r.plain()}`);
  assert.match(r.plain(), /replace it\? \[y\/n\/a\/q\] (\^C)?\r?\n(\r?\n)?tsc-croc: cancelled \[ERR_CANCELLED\]/);
  assert.deepEqual((await readdir(out)).sort(), ['a.bin', 'photos']);
  assert.equal(await readFile(join(out, 'a.bin'), 'utf8'), 'old a\n');
});

test('a dropped connection after a skip: the recipient says the same skip again, the sender its plan, the kept name stays untouched', async (t) => {
  let own = await startCliRelay();
  t.after(() => own.stop());
  const src = join(dir, 'drop-src');
  const out = join(dir, 'drop-out');
  await mkdir(src);
  await mkdir(out);
  await writeFile(join(src, 'kept.bin'), randomBytes(5000));
  await writeFile(join(out, 'kept.bin'), 'mine\n');
  await writeFile(join(src, 'a.bin'), randomBytes(600_000));
  // 120 MiB: big enough that the sender, paused as soon as its file-start line shows (--json writes
  // per-file lines up to 50 ms late), cannot have sent it all by then
  const block = randomBytes(1024 * 1024);
  await writeFile(join(src, 'b.bin'), Buffer.concat(Array.from({ length: 120 }, (_, i) => Buffer.concat([Buffer.from([i]), block.subarray(1)]))));
  const args = ['kept.bin', 'a.bin', 'b.bin'].map((n) => join(src, n));
  const sender = runCli(['send', '--relay', own.url, '--no-local', '--json', ...args]);
  const [, code] = await sender.waitFor(/"code":"([^"]+)"/);
  const recipient = runCli(['receive', '--relay', own.url, '--no-local', '--json', '--yes', '--skip-existing', '--out', out], { env: { TSC_CROC_SECRET: code! } });
  // the relay dies once the sender has started b.bin, with the sender paused: it has not sent "done"
  await sender.waitFor(/"event":"file-start","path":"b\.bin"/, 30_000);
  sender.child.kill('SIGSTOP');
  own.proc.child.kill('SIGKILL');
  await own.proc.exit();
  sender.child.kill('SIGCONT');
  await recipient.waitFor(/"event":"reconnecting"/);
  await sender.waitFor(/"event":"reconnecting"/);
  own = await startCliRelay({}, { http: own.httpPort, tcp: own.tcpPort });
  assert.equal(await recipient.exit(60_000), 0, recipient.output());
  assert.equal(await sender.exit(), 0, sender.output());
  assert.match(sender.stdout(), /"event":"reconnected"/);
  assert.equal(sender.stdout().match(/"event":"skipped"/g)?.length, 1, 'reported once per run');
  const starts = sender.stdout().match(/"event":"file-start","path":"[^"]+"/g) ?? [];
  assert.ok(starts.every((s) => !s.includes('kept.bin')), 'the kept name is never sent, in either session');
  assert.ok(starts.filter((s) => s.includes('a.bin')).length >= 2, 'the second session went over the list again');
  assert.equal(await readFile(join(out, 'kept.bin'), 'utf8'), 'mine\n');
  for (const n of ['a.bin', 'b.bin']) assert.equal(await sha256File(join(out, n)), await sha256File(join(src, n)), n);
  assert.match(sender.stdout(), /"event":"done","kind":"files","files":2,"bytes":126429120,/);
});

test('a hostile recipient against the real sender: a skip of a name not offered, or a "have" under a skipped name, is refused before anything is sent', async () => {
  const peer = await startPeerRelay();
  try {
    const src = join(dir, 'hostile-recipient');
    await mkdir(src);
    await writeFile(join(src, 'one.txt'), 'one');
    await writeFile(join(src, 'two.txt'), 'two');
    const timeouts = { waitForPeerMs: 10_000, stepMs: 10_000, stapleMs: 10_000, reconnectMs: 0 };
    const scripts: [RecipientMessage[], RegExp][] = [
      [[{ type: 'skip', names: ['three.txt'] }, { type: 'accept' }], /"skip" names "three\.txt", which was not offered/],
      [[{ type: 'skip', names: ['one.txt'] }, { type: 'have', entries: [{ path: 'one.txt', offset: 3, digest, whole: true }] }, { type: 'accept' }], /"have" for "one\.txt", under a name it skipped/],
      [[{ type: 'have', entries: [{ path: 'two.txt', offset: 1, digest, whole: false }, { path: 'two.txt', offset: 2, digest, whole: false }] }, { type: 'accept' }], /"have" names "two\.txt" twice/],
    ];
    for (const [script, re] of scripts) {
      let onCode!: (c: string) => void;
      const codeOut = new Promise<string>((r) => (onCode = r));
      const sending = send({ relay: peer.httpUrl, lan: 'off', files: [join(src, 'one.txt'), join(src, 'two.txt')], timeouts, onEvent: (e) => e.type === 'code' && onCode(e.code) }).then(
        () => null,
        (e: unknown) => e,
      );
      const { channel, secret } = parseCode(await codeOut);
      const client = new RelayClient(peer.httpUrl);
      const joined = await client.join({ role: 'recipient', channel });
      const keys = await recipientPake(client, joined, secret, timeouts);
      const st = await connectStapled({ host: client.host, port: joined.tcpPort, channel, uuid: joined.uuid, timeoutMs: 10_000 });
      const ch = new SecureChannel(st.socket, st.leftover, keys.recipientToSender, keys.senderToRecipient, undefined, st.tap);
      const seen: string[] = [];
      const reading = (async () => {
        for await (const rec of ch.records()) if (rec.type === RecordType.MESSAGE) seen.push(JSON.parse(recordPayload(rec).toString()).type as string);
      })().catch(() => undefined);
      for (const m of script) await ch.sendMessage(m).catch(() => undefined);
      const e = await sending;
      await reading;
      ch.destroy();
      assert.ok(e instanceof TscCrocError && e.code === 'ERR_PROTOCOL', String(e));
      assert.match(e.message, re);
      assert.deepEqual(seen.filter((t) => t !== 'keepalive' && t !== 'error'), ['offer'], 'nothing but the offer went out');
    }
  } finally {
    await peer.close();
  }
});
