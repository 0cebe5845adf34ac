/**
 * What people see, from the built CLI: on a pseudo-terminal (script(1) runs the command on one)
 * colour and bars, without one neither; the Done lines for piped data and a text on both sides;
 * the stage wording on the local network; Ctrl-C at a prompt leaves the error on its own line.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, sha256File, startCliRelay } from './helpers/cli.js';
import { haveScript, onTerminal as spawnTerminal, plain, type Terminal } from './helpers/terminal.js';

let relay: Awaited<ReturnType<typeof startCliRelay>>;
let dir: string;
const scriptHere = haveScript();

before(async () => {
  relay = await startCliRelay();
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-output-'));
});

after(async () => {
  assert.equal(await relay.stop(), 0, relay.proc.stderr());
  await rm(dir, { recursive: true, force: true });
});

const SGR = /\x1b\[[0-9;]*m/;

async function fresh(name: string) {
  const src = join(dir, `${name}-src`);
  const out = join(dir, `${name}-out`);
  await mkdir(src);
  await mkdir(out);
  return { src, out };
}

/** The CLI on a pseudo-terminal for the length of test `t`. */
function onTerminal(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}): Terminal {
  const term = spawnTerminal(args, { configHome: dir, env, timeoutMs: 30_000 });
  t.after(term.kill);
  return term;
}

/** A send on a terminal and a receive on another, of `files`, with `env` on both; returns both screens. */
async function pair(t: TestContext, name: string, env: NodeJS.ProcessEnv, files: Record<string, number>) {
  const { src, out } = await fresh(name);
  const paths: string[] = [];
  for (const [file, size] of Object.entries(files)) {
    paths.push(join(src, file));
    await writeFile(join(src, file), randomBytes(size));
  }
  const sender = onTerminal(t, ['send', '--relay', relay.url, '--no-local', ...paths], env);
  await sender.seen(/Code is: \S+/);
  const code = /Code is: (\S+)/.exec(plain(sender.screen()))![1]!;
  const recipient = onTerminal(t, ['receive', '--relay', relay.url, '--no-local', '--yes', '--out', out], { ...env, TSC_CROC_SECRET: code });
  assert.equal(await recipient.exit(), 0, recipient.screen());
  assert.equal(await sender.exit(), 0, sender.screen());
  for (const p of paths) assert.equal(await sha256File(join(out, p.slice(src.length + 1))), await sha256File(p));
  return { sender: sender.screen(), recipient: recipient.screen() };
}

test('on a terminal: dim stage numbers, a bold code, a green Done, the file name on the bar; NO_COLOR: the same without colour', async (t) => {
  if (!scriptHere) return t.skip('no `script` (util-linux) here to give the CLI a terminal');
  const coloured = await pair(t, 'colour', {}, { 'one.bin': 3_000_000 });
  t.diagnostic(`sender screen:\n${coloured.sender}`);
  t.diagnostic(`recipient screen:\n${coloured.recipient}`);
  assert.match(coloured.sender, /\x1b\[2m\[1\/4\]\x1b\[22m Connecting to the relay 127\.0\.0\.1:\d+\.\.\./);
  assert.match(coloured.sender, /Code is: \x1b\[1m\d+-[a-z]+-[a-z]+-[a-z]+\x1b\[22m/);
  assert.match(coloured.recipient, /\x1b\[32mDone: 1 file, 3\.0 MB \(in [\d.]+ s, [\d.]+ [kMG]?B\/s\)\.\x1b\[39m/);
  assert.match(coloured.sender, /\x1b\[32mDone: 1 file, 3\.0 MB/);
  // a single file: its name on the (only) bar, from the first drawing on
  for (const screen of [coloured.sender, coloured.recipient]) assert.match(plain(screen), / {2}one\.bin +\S+ \d+% \| /);

  const bare = await pair(t, 'nocolour', { NO_COLOR: '1' }, { 'two.bin': 3_000_000 });
  for (const screen of [bare.sender, bare.recipient]) {
    assert.doesNotMatch(screen, SGR, JSON.stringify(screen));
    assert.match(screen, /\[1\/\d\] Connecting to the relay/);
    assert.match(screen, / {2}two\.bin +\S+ \d+% \| /, 'the bars are there, only the colour is not');
    assert.match(screen, /Done: 1 file, 3\.0 MB/);
  }
});

test('several files on a terminal: the current file is shown from the first one, under the total', async (t) => {
  if (!scriptHere) return t.skip('no `script` (util-linux) here to give the CLI a terminal');
  const screens = await pair(t, 'several', {}, { 'first.bin': 2_000_000, 'second.bin': 1_000_000, 'third.bin': 1_000 });
  for (const screen of [screens.sender, screens.recipient]) {
    const p = plain(screen);
    assert.match(p, / {2}total +\S+ \d+% \| /);
    assert.match(p, / {2}first\.bin +\S+ \d+%/, 'the first file has its bar');
    assert.match(p, /Done: 3 files, 3\.0 MB/);
  }
});

test('without a terminal no colour, unless FORCE_COLOR; an error prefix red then', async () => {
  const { src } = await fresh('force');
  await writeFile(join(src, 'a.txt'), 'x');
  const quiet = runCli(['send', '--relay', relay.url, '--no-local', '--text', 'hi', '--code', 'bad code']);
  assert.equal(await quiet.exit(), 2);
  assert.doesNotMatch(quiet.output(), SGR);
  assert.match(quiet.stderr(), /^tsc-croc: warning: a code given as an argument/m);
  const forced = runCli(['send', '--relay', relay.url, '--no-local', '--text', 'hi', '--code', 'bad code'], { env: { FORCE_COLOR: '1' } });
  assert.equal(await forced.exit(), 2);
  assert.match(forced.stderr(), /^\x1b\[33mtsc-croc: warning:\x1b\[39m a code given/m);
  assert.match(forced.stderr(), /^\x1b\[31mtsc-croc:\x1b\[39m .*\[ERR_BAD_CODE_FORMAT\]$/m);
  // the same text as without colour, once the colour is taken out
  assert.equal(plain(forced.stderr()), quiet.stderr());
});

test('the Done lines of piped data and of a text, on both sides', async () => {
  // piped: 10.2 kB of text (stdout is read as UTF-8 here)
  const data = 'tsc-croc piped data\n'.repeat(510);
  const sender = runCli(['send', '--relay', relay.url, '--no-local'], { input: data });
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(['receive', '--relay', relay.url, '--no-local', '--yes'], { env: { TSC_CROC_SECRET: code! } });
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(recipient.stdout(), data);
  assert.match(sender.stderr(), /^Done: sent 10\.2 kB of piped data \(in [\d.]+ s, [\d.]+ [kM]?B\/s\)\.$/m);
  assert.match(recipient.stderr(), /^Done: received 10\.2 kB of piped data \(in [\d.]+ s, [\d.]+ [kM]?B\/s\)\.$/m);
  assert.doesNotMatch(sender.stderr() + recipient.stderr(), /0 files/);

  const textSender = runCli(['send', '--relay', relay.url, '--no-local', '--text', 'hello world']);
  const [, textCode] = await textSender.waitFor(/Code is: (\S+)/);
  const textRecipient = runCli(['receive', '--relay', relay.url, '--no-local'], { env: { TSC_CROC_SECRET: textCode! } });
  assert.equal(await textRecipient.exit(), 0, textRecipient.stderr());
  assert.equal(await textSender.exit(), 0, textSender.stderr());
  assert.equal(textRecipient.stdout(), 'hello world\n');
  assert.match(textSender.stderr(), /^Done: sent a text \(11 B\)\.$/m);
  assert.match(textRecipient.stderr(), /^Done: received a text \(11 B\)\.$/m);
});

test('with no relay configured the stages say the local network, never a relay', async () => {
  // TSC_CROC_INTERFACES=lo (runCli): nothing is announced on the machine's real interfaces
  const { src, out } = await fresh('lan');
  const file = join(src, 'lan.bin');
  await writeFile(file, randomBytes(50_000));
  const sender = runCli(['send', file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(['receive', '--yes', '--out', out], { env: { TSC_CROC_SECRET: code! } });
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(await sha256File(join(out, 'lan.bin')), await sha256File(file));
  assert.match(sender.stderr(), /^\[1\/4\] Announcing on the local network\.\.\.$/m);
  assert.match(sender.stderr(), /^\[3\/4\] Securing the connection \(SPAKE2, local network\)\.\.\.$/m);
  assert.match(recipient.stderr(), /^\[1\/3\] Looking for the sender on the local network\.\.\.$/m);
  assert.match(recipient.stderr(), /^\[2\/3\] Securing the connection \(SPAKE2, local network\)\.\.\.$/m);
  assert.doesNotMatch(sender.stderr() + recipient.stderr(), /relay/i);
});

test('Ctrl-C at a prompt (the offer, the code) puts the error on its own line', async (t) => {
  if (!scriptHere) return t.skip('no `script` (util-linux) here to give the CLI a terminal');
  const { src, out } = await fresh('ctrl-c');
  const file = join(src, 'a.bin');
  await writeFile(file, randomBytes(1000));
  const sender = runCli(['send', '--relay', relay.url, '--no-local', file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = onTerminal(t, ['receive', '--relay', relay.url, '--no-local', '--out', out], { TSC_CROC_SECRET: code! });
  await recipient.seen(/Accept 1 file .*\? \[y\/N\] $/);
  recipient.type('\x03');
  assert.equal(await recipient.exit(), 4, recipient.screen());
  t.diagnostic(`screen:\n${recipient.screen()}`);
  assert.match(plain(recipient.screen()), /\[y\/N\] \n(?:.*\n)*?tsc-croc: cancelled \[ERR_CANCELLED\]\n/);
  assert.doesNotMatch(plain(recipient.screen()), /\[y\/N\] tsc-croc/);
  assert.match(recipient.screen(), /\x1b\[31mtsc-croc:\x1b\[39m cancelled/, 'red on a terminal');
  assert.equal(await sender.exit(), 4, sender.stderr());

  const typing = onTerminal(t, ['receive', '--relay', relay.url, '--no-local', '--out', out]);
  await typing.seen(/Enter the code the sender shows .*: $/);
  typing.type('12-ab');
  await typing.seen(/: 12-ab$/);
  typing.type('\x03');
  assert.equal(await typing.exit(), 4, typing.screen());
  assert.match(plain(typing.screen()), /: 12-ab\ntsc-croc: cancelled \[ERR_CANCELLED\]\n/);
});
