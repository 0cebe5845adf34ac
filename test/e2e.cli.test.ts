/**
 * End to end through the built CLI: a relay, a sender and a recipient as three processes on
 * loopback, files compared by hash.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, runCli, sha256File, startCliRelay } from './helpers/cli.js';
import { haveScript, onTerminal } from './helpers/terminal.js';

let relay: Awaited<ReturnType<typeof startCliRelay>>;
let dir: string;

before(async () => {
  relay = await startCliRelay();
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-e2e-'));
});

after(async () => {
  const code = await relay.stop();
  assert.equal(code, 0, `relay exit code ${code}\n${relay.proc.stderr()}`);
  await rm(dir, { recursive: true, force: true });
});

async function freshDirs(name: string) {
  const src = join(dir, `${name}-src`);
  const out = join(dir, `${name}-out`);
  await import('node:fs/promises').then((f) => Promise.all([f.mkdir(src), f.mkdir(out)]));
  return { src, out };
}

test('the bundled executable: --version (answered before the commands load) is package.json\'s version; --help lists the commands', async () => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string; bin: Record<string, string> };
  assert.equal(CLI, new URL(`../../${pkg.bin['tsc-croc']}`, import.meta.url).pathname, 'the tests run what package.json installs');
  assert.ok(((await stat(CLI)).mode & 0o111) !== 0, 'executable');
  for (const flag of ['--version', '-V']) {
    const p = runCli([flag]);
    assert.equal(await p.exit(), 0);
    assert.equal(p.stdout(), `${pkg.version}\n`);
  }
  const help = runCli(['--help']);
  assert.equal(await help.exit(), 0);
  for (const command of ['send', 'receive', 'relay']) assert.match(help.stdout(), new RegExp(`\\b${command}\\b`));
  // the version through the command parser as well (with another option, --version goes there)
  const parsed = runCli(['--version', '--help']);
  assert.equal(await parsed.exit(), 0);
  assert.match(parsed.stdout(), new RegExp(`^${pkg.version.replaceAll('.', '\\.')}$`, 'm'));
});

test('a 10 MB random file and an empty file arrive identical, with mode and mtime', async () => {
  const { src, out } = await freshDirs('basic');
  const big = join(src, 'random.bin');
  const empty = join(src, 'empty.txt');
  await writeFile(big, randomBytes(10 * 1024 * 1024), { mode: 0o640 });
  await writeFile(empty, '');
  const mtime = new Date('2020-02-02T02:02:02Z');
  await utimes(big, mtime, mtime);

  const sender = runCli(['send', '--relay', relay.url, big, empty]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  assert.match(code!, /^\d+-[a-z]+-[a-z]+-[a-z]+$/);
  await sender.waitFor(new RegExp(`TSC_CROC_SECRET=${code} tsc-croc receive --relay ${relay.url}`));

  const recipient = runCli(['receive', '--relay', relay.url, '--out', out, '--yes', code!]);
  const [rc, sc] = await Promise.all([recipient.exit(), sender.exit()]);
  assert.equal(rc, 0, recipient.stderr());
  assert.equal(sc, 0, sender.stderr());

  assert.equal(await sha256File(join(out, 'random.bin')), await sha256File(big));
  assert.equal(await sha256File(join(out, 'empty.txt')), await sha256File(empty));
  const st = await stat(join(out, 'random.bin'));
  assert.equal(st.size, 10 * 1024 * 1024);
  assert.equal(st.mode & 0o777, 0o640);
  assert.equal(st.mtime.getTime(), mtime.getTime());
  assert.deepEqual((await readdir(out)).sort(), ['empty.txt', 'random.bin'], 'no temporary files left');
  assert.doesNotMatch(recipient.stderr() + sender.stderr(), /Error:|at .*\.js:\d+/, 'no stack traces');
});

test('a wrong code fails the recipient with exit code 3 and writes nothing; the sender says so and keeps waiting for the right code', async () => {
  const { src, out } = await freshDirs('wrong');
  const file = join(src, 'secret.txt');
  await writeFile(file, 'top secret');
  const sender = runCli(['send', '--no-local', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const channel = code!.split('-')[0];
  const wrong = `${channel}-abandon-ability-able`;
  assert.notEqual(wrong, code);

  const recipient = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', wrong]);
  assert.equal(await recipient.exit(), 3, recipient.stderr());
  assert.match(recipient.stderr(), /code is wrong/);
  await sender.waitFor(/Someone tried a wrong code \(1 of 5\): still waiting for the right one/);
  assert.deepEqual(await readdir(out), []);
  // the right code still works
  const right = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes', code!]);
  const [rc, sc] = await Promise.all([right.exit(), sender.exit()]);
  assert.equal(rc, 0, right.stderr());
  assert.equal(sc, 0, sender.stderr());
  assert.equal(await readFile(join(out, 'secret.txt'), 'utf8'), 'top secret');
  // the secret words never appear in any output
  const words = code!.split('-').slice(1).join('-');
  assert.ok(!recipient.stderr().includes(words) && !relay.proc.stderr().includes(words));
});

test('the sender can choose the code, through TSC_CROC_SECRET, in P-256', async () => {
  const { src, out } = await freshDirs('chosen');
  const file = join(src, 'a.txt');
  await writeFile(file, 'chosen code');
  const code = `x${randomBytes(3).toString('hex')}-purple-monkey-dishwasher`;
  const sender = runCli(['send', '--relay', relay.url, '--curve', 'p256', file], { env: { TSC_CROC_SECRET: code } });
  await sender.waitFor(new RegExp(`Code is: ${code}`));
  // typed differently: upper case, spaces
  const typed = code.toUpperCase().replaceAll('-', ' ');
  const recipient = runCli(['receive', '--relay', relay.url, '--out', out, '--yes', typed]);
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(await sha256File(join(out, 'a.txt')), await sha256File(file));
});

test('without a terminal and without --yes the recipient refuses, and the sender hears it', async () => {
  const { src, out } = await freshDirs('consent');
  const file = join(src, 'a.txt');
  await writeFile(file, 'needs consent');
  const sender = runCli(['send', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(['receive', '--relay', relay.url, '--out', out, code!]);
  const [rc, sc] = await Promise.all([recipient.exit(), sender.exit()]);
  assert.equal(rc, 4, recipient.stderr());
  assert.match(recipient.stderr(), /pass --yes/);
  assert.equal(sc, 4, sender.stderr());
  assert.match(sender.stderr(), /declined/);
  assert.deepEqual(await readdir(out), []);
});

test('an existing file is not overwritten without --overwrite', async () => {
  const { src, out } = await freshDirs('exists');
  const file = join(src, 'a.txt');
  await writeFile(file, 'new content');
  await writeFile(join(out, 'a.txt'), 'precious');
  const run = async (extra: string[]) => {
    const sender = runCli(['send', '--relay', relay.url, file]);
    const [, code] = await sender.waitFor(/Code is: (\S+)/);
    const recipient = runCli(['receive', '--relay', relay.url, '--out', out, '--yes', ...extra, code!]);
    return Promise.all([recipient.exit(), sender.exit(), recipient]);
  };
  const [rc, sc, r1] = await run([]);
  assert.equal(rc, 1, r1.stderr());
  assert.notEqual(sc, 0);
  assert.match(r1.stderr(), /already in .*a\.txt.*--overwrite/);
  const { readFile } = await import('node:fs/promises');
  assert.equal(await readFile(join(out, 'a.txt'), 'utf8'), 'precious');
  assert.deepEqual(await readdir(out), ['a.txt'], 'no temporary file left');

  const [rc2, sc2, r2] = await run(['--overwrite']);
  assert.equal(rc2, 0, r2.stderr());
  assert.equal(sc2, 0);
  assert.equal(await readFile(join(out, 'a.txt'), 'utf8'), 'new content');
});

test('usage errors: exit code 2 and one clear line', async () => {
  const noFile = runCli(['send', 'nothing.txt']);
  assert.equal(await noFile.exit(), 2);
  assert.match(noFile.stderr(), /no such file/);
  const missing = runCli(['send', '--relay', relay.url, join(dir, 'does-not-exist')]);
  assert.equal(await missing.exit(), 2);
  assert.match(missing.stderr(), /no such file/);
  const { mkdir: mk } = await import('node:fs/promises');
  await mk(join(dir, 'u1'), { recursive: true });
  await mk(join(dir, 'u2'), { recursive: true });
  await writeFile(join(dir, 'u1', 'same.txt'), '1');
  await writeFile(join(dir, 'u2', 'same.txt'), '2');
  const twice = runCli(['send', '--relay', relay.url, join(dir, 'u1', 'same.txt'), join(dir, 'u2', 'same.txt')]);
  assert.equal(await twice.exit(), 2);
  assert.match(twice.stderr(), /two arguments are named same\.txt/);
  assert.doesNotMatch(twice.stdout(), /Code is/, 'refused before a code is shown');
  const badCode = runCli(['receive', '--relay', relay.url, 'not a code!']);
  assert.equal(await badCode.exit(), 2);
  const unknown = runCli(['frobnicate']);
  assert.equal(await unknown.exit(), 2);
  // no code, and no terminal to type it on: one clear line naming the safe forms
  const noCode = runCli(['receive', '--relay', relay.url]);
  assert.equal(await noCode.exit(), 2);
  assert.match(noCode.stderr(), /type it, or set TSC_CROC_SECRET=<code> \(not an argument: other users see those\) \[ERR_INVALID_ARGUMENT\]/);
  // an interface that does not exist is refused, never read as "every interface"
  const noIf = runCli(['receive', '--interface', 'nosuch0'], { env: { TSC_CROC_SECRET: '7-abandon-ability-able' } });
  assert.equal(await noIf.exit(), 2);
  assert.match(noIf.stderr(), /no interface "nosuch0"/);
});

test('a mistyped flag or a bad value: one line naming it (and a guess), one line pointing at the command\'s help, exit 2, never the whole help', async () => {
  const cases: [string[], RegExp, string][] = [
    [['send', '--rely', relay.url, 'x'], /^tsc-croc: error: unknown option '--rely' \(did you mean --relay\?\)$/, 'send'],
    [['receive', '--ouut', dir], /^tsc-croc: error: unknown option '--ouut' \(did you mean --out\?\)$/, 'receive'],
    [['send', '--stall', '10', 'x'], /^tsc-croc: error: option '--stall <seconds>' argument '10' is invalid\. at least 45 seconds$/, 'send'],
    [['send', '--curve', 'nope', 'x'], /^tsc-croc: error: option '--curve <curve>' argument 'nope' is invalid\. Allowed choices are /, 'send'],
    [['relay', '--port'], /^tsc-croc: error: option '--port <port>' argument missing$/, 'relay'],
  ];
  for (const [args, first, command] of cases) {
    const p = runCli(args);
    assert.equal(await p.exit(), 2, p.stderr());
    const lines = p.stderr().trimEnd().split('\n');
    assert.equal(lines.length, 2, `tsc-croc ${args.join(' ')}:\n${p.stderr()}`);
    assert.match(lines[0]!, first);
    assert.equal(lines[1], `(run tsc-croc ${command} --help)`);
    assert.equal(p.stdout(), '');
  }
});

test('on a terminal, receive asks for the code (echoed; Tab completes a word from its first letters) and the file arrives', async (t) => {
  if (!haveScript()) return t.skip('no `script` (util-linux) here to give the recipient a terminal');
  const { src, out } = await freshDirs('prompt');
  const file = join(src, 'typed.bin');
  await writeFile(file, randomBytes(100_000));
  const sender = runCli(['send', '--relay', relay.url, '--no-local', file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const [channel, ...words] = code!.split('-');
  const term = onTerminal(['receive', '--relay', relay.url, '--no-local', '--out', out], { configHome: dir, env: { NO_COLOR: '1' } });
  t.after(term.kill);
  await term.seen(/Enter the code the sender shows/);
  // one key at a time, each after the last one's echo (a burst would be a paste, where Tab is a plain character)
  const key = async (k: string, echo: RegExp) => {
    const before = term.screen().length;
    term.type(k);
    await term.seen(echo);
    await term.seen(/[^]/, before); // its own echo, not an earlier one
  };
  for (const ch of `${channel}-`) await key(ch, /[^]/);
  for (const w of words) {
    for (const ch of w.slice(0, 4)) await key(ch, /[^]/);
    // the unique 4-letter prefix completes the word and its dash; a 3-letter word (cat) is also
    // the prefix of others (catalog, catch), where Tab lists them: typed whole, with its dash
    if (w.length >= 4) await key('\t', new RegExp(`${w}-`));
    else await key('-', new RegExp(`${w}-`));
  }
  await key('\r', /Accept 1 file/);
  await key('y\r', /Done/);
  assert.equal(await term.exit(), 0, term.screen());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(await sha256File(join(out, 'typed.bin')), await sha256File(file));
});

test('an unreachable relay is reported with exit code 5', async () => {
  const { src } = await freshDirs('unreachable');
  const file = join(src, 'a.txt');
  await writeFile(file, 'x');
  // a port nobody listens on: bind, read the port, close
  const { createServer } = await import('node:net');
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const sender = runCli(['send', '--relay', `http://127.0.0.1:${port}`, file]);
  assert.equal(await sender.exit(), 5, sender.stderr());
  assert.match(sender.stderr(), /cannot reach the relay/);
});

test('a relay with a password: refused without it (exit 1, clear line), works with TSC_CROC_RELAY_PASSWORD', async () => {
  const locked = await startCliRelay({ TSC_CROC_RELAY_PASSWORD: 'correct horse battery' });
  try {
    const { src, out } = await freshDirs('password');
    const file = join(src, 'a.txt');
    await writeFile(file, 'behind a password');
    const refused = runCli(['send', '--relay', locked.url, file]);
    assert.equal(await refused.exit(), 1, refused.stderr());
    assert.match(refused.stderr(), /needs a password/);
    assert.doesNotMatch(locked.proc.stderr(), /correct horse/, 'the password is never printed');

    const env = { TSC_CROC_RELAY_PASSWORD: 'correct horse battery' };
    const sender = runCli(['send', '--relay', locked.url, file], { env });
    const [, code] = await sender.waitFor(/Code is: (\S+)/);
    const recipient = runCli(['receive', '--relay', locked.url, '--out', out, '--yes', code!], { env });
    assert.equal(await recipient.exit(), 0, recipient.stderr());
    assert.equal(await sender.exit(), 0, sender.stderr());
    assert.equal(await sha256File(join(out, 'a.txt')), await sha256File(file));
  } finally {
    assert.equal(await locked.stop(), 0);
  }
});

test('a nested folder with unicode and spaces, empty files and empty folders, modes and mtimes', async () => {
  const { src, out } = await freshDirs('folder');
  const { mkdir: mk, chmod, readdir: rd, stat: st } = await import('node:fs/promises');
  const root = join(src, 'Phötos 2024');
  const tree: Record<string, string | null> = {
    'a.txt': 'alpha',
    'empty.txt': '',
    'sub dir/ünïcødé 文件.bin': randomBytes(300_000).toString('latin1'),
    'sub dir/deeper/x y z.md': '# hi',
    'empty folder': null,
    'sub dir/also empty': null,
  };
  for (const [rel, content] of Object.entries(tree)) {
    const p = join(root, rel);
    if (content === null) await mk(p, { recursive: true });
    else {
      await mk(join(p, '..'), { recursive: true });
      await writeFile(p, content, 'latin1');
    }
  }
  await chmod(join(root, 'a.txt'), 0o600);
  await chmod(join(root, 'sub dir', 'deeper'), 0o750);
  const t = new Date('2021-06-01T12:00:00Z');
  await utimes(join(root, 'a.txt'), t, t);
  await utimes(join(root, 'sub dir'), t, t);

  const sender = runCli(['send', '--relay', relay.url, root]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(['receive', '--relay', relay.url, '--out', out, '--yes', code!]);
  const [rc, sc] = await Promise.all([recipient.exit(), sender.exit()]);
  assert.equal(rc, 0, recipient.stderr());
  assert.equal(sc, 0, sender.stderr());

  const got = join(out, 'Phötos 2024');
  for (const [rel, content] of Object.entries(tree)) {
    const p = join(got, rel);
    if (content === null) assert.deepEqual(await rd(p), [], `${rel} is an empty folder`);
    else assert.equal(await sha256File(p), await sha256File(join(root, rel)), rel);
  }
  assert.equal((await st(join(got, 'a.txt'))).mode & 0o777, 0o600);
  assert.equal((await st(join(got, 'sub dir', 'deeper'))).mode & 0o777, 0o750);
  assert.equal((await st(join(got, 'a.txt'))).mtime.getTime(), t.getTime());
  assert.equal((await st(join(got, 'sub dir'))).mtime.getTime(), t.getTime(), 'folder mtimes are kept');
  assert.deepEqual(await rd(out), ['Phötos 2024'], 'nothing else in the output folder');
});

test('sending the same folder again: refused without --overwrite, merged with it', async () => {
  const { src, out } = await freshDirs('folder-again');
  const { mkdir: mk, readFile: rf } = await import('node:fs/promises');
  await mk(join(src, 'docs'));
  await writeFile(join(src, 'docs', 'a.txt'), 'v2');
  await mk(join(out, 'docs'));
  await writeFile(join(out, 'docs', 'mine.txt'), 'keep me');
  const run = async (extra: string[]) => {
    const sender = runCli(['send', '--relay', relay.url, join(src, 'docs')]);
    const [, code] = await sender.waitFor(/Code is: (\S+)/);
    const recipient = runCli(['receive', '--relay', relay.url, '--out', out, '--yes', ...extra, code!]);
    return [await recipient.exit(), await sender.exit(), recipient] as const;
  };
  const [rc, , r1] = await run([]);
  assert.equal(rc, 1, r1.stderr());
  assert.match(r1.stderr(), /already in .*docs/);
  assert.deepEqual((await readdir(join(out, 'docs'))).sort(), ['mine.txt']);
  const [rc2, sc2, r2] = await run(['--overwrite']);
  assert.equal(rc2, 0, r2.stderr());
  assert.equal(sc2, 0);
  assert.equal(await rf(join(out, 'docs', 'a.txt'), 'utf8'), 'v2');
  assert.equal(await rf(join(out, 'docs', 'mine.txt'), 'utf8'), 'keep me');
});

test('2,000 small files in 4 folders arrive identical (20,000: npm run test:scale)', async () => {
  const { src, out } = await freshDirs('many');
  const { mkdir: mk, readdir: rd } = await import('node:fs/promises');
  const root = join(src, 'many');
  const hashes = new Map<string, string>();
  for (let d = 0; d < 4; d++) {
    await mk(join(root, `d${d}`), { recursive: true });
    await Promise.all(
      Array.from({ length: 500 }, async (_, i) => {
        const data = randomBytes(512);
        await writeFile(join(root, `d${d}`, `f${i}`), data);
        hashes.set(`d${d}/f${i}`, (await import('node:crypto')).createHash('sha256').update(data).digest('hex'));
      }),
    );
  }
  const sender = runCli(['send', '--relay', relay.url, root]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(['receive', '--relay', relay.url, '--out', out, '--yes', code!]);
  const [rc, sc] = await Promise.all([recipient.exit(120_000), sender.exit(120_000)]);
  assert.equal(rc, 0, recipient.stderr());
  assert.equal(sc, 0, sender.stderr());
  let count = 0;
  for (let d = 0; d < 4; d++) {
    const names = await rd(join(out, 'many', `d${d}`));
    assert.equal(names.length, 500);
    for (const n of names) {
      assert.equal(await sha256File(join(out, 'many', `d${d}`, n)), hashes.get(`d${d}/${n}`));
      count++;
    }
  }
  assert.equal(count, 2_000);
});

test('a text message is printed by the recipient, control characters made harmless only on a terminal', async () => {
  const text = 'Hello from tsc-croc! ünïcødé ✓\nsecond line';
  const sender = runCli(['send', '--relay', relay.url, '--qr', '--text', text]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  await sender.waitFor(/█▀▀▀▀▀▀▀█/); // the QR code of the receive command, on stderr
  const recipient = runCli(['receive', '--relay', relay.url, code!]); // no --yes: a text is only shown
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(recipient.stdout(), `${text}\n`);
});

test('piped data of unknown length goes from the sender stdin to the recipient stdout', async () => {
  const data = randomBytes(3 * 1024 * 1024).toString('hex'); // 6 MB of text: stdout is read as UTF-8 here
  const sender = runCli(['send', '--relay', relay.url], { input: data });
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(['receive', '--relay', relay.url, '--yes', code!]);
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(recipient.stdout().length, data.length);
  assert.ok(recipient.stdout() === data, 'the same bytes');
  // without --yes and without a terminal: refused
  const again = runCli(['send', '--relay', relay.url], { input: 'x' });
  const [, code2] = await again.waitFor(/Code is: (\S+)/);
  const refused = runCli(['receive', '--relay', relay.url, code2!]);
  assert.equal(await refused.exit(), 4, refused.stderr());
  assert.equal(refused.stdout(), '');
  assert.equal(await again.exit(), 4);
});

test('receive --stdout writes a single file to stdout, and refuses a folder', async () => {
  const { src, out } = await freshDirs('stdout');
  const file = join(src, 'notes.txt');
  const content = `${'line of text\n'.repeat(50_000)}`;
  await writeFile(file, content);
  const sender = runCli(['send', '--relay', relay.url, file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  const recipient = runCli(['receive', '--relay', relay.url, '--out', out, '--yes', '--stdout', code!]);
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.ok(recipient.stdout() === content);
  assert.deepEqual(await readdir(out), [], 'nothing written to the folder');

  const { mkdir: mk } = await import('node:fs/promises');
  await mk(join(src, 'folder'));
  await writeFile(join(src, 'folder', 'a'), 'a');
  const s2 = runCli(['send', '--relay', relay.url, join(src, 'folder')]);
  const [, code2] = await s2.waitFor(/Code is: (\S+)/);
  const r2 = runCli(['receive', '--relay', relay.url, '--out', out, '--yes', '--stdout', code2!]);
  assert.equal(await r2.exit(), 2, r2.stderr());
  assert.match(r2.stderr(), /only a single file/);
  assert.equal(await s2.exit(), 4);
});

test('no relay configured: the sender runs one and announces it on the local network; the recipient finds it', async () => {
  const { src, out } = await freshDirs('zeroconf');
  const file = join(src, 'lan.bin');
  await writeFile(file, randomBytes(2 * 1024 * 1024));
  const sender = runCli(['send', file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  await sender.waitFor(/TSC_CROC_SECRET=\S+ tsc-croc receive\n/); // no --relay to pass on
  const recipient = runCli(['receive', '--out', out, '--yes', code!]);
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(await sha256File(join(out, 'lan.bin')), await sha256File(file));
  // nobody sending: a clear error, quickly
  const lonely = runCli(['receive', '--wait', '0', '--out', out, '--yes', 'nosuchchannel-abandon-ability-able']);
  assert.equal(await lonely.exit(), 1);
  assert.match(lonely.stderr(), /no sender found on the local network for channel nosuchchannel/);
});

test('a relay configured and the LAN available: the LAN is used; with --no-local, the relay', async () => {
  const { src, out } = await freshDirs('routes');
  const file = join(src, 'r.bin');
  await writeFile(file, randomBytes(1024 * 1024));
  const run = async (extra: string[], name: string) => {
    const sender = runCli(['send', '--relay', relay.url, ...extra, file]);
    const [, code] = await sender.waitFor(/Code is: (\S+)/);
    const dest = join(out, name);
    await (await import('node:fs/promises')).mkdir(dest);
    const recipient = runCli(['receive', '--relay', relay.url, '--out', dest, '--yes', '--json', ...extra, code!]);
    assert.equal(await recipient.exit(), 0, recipient.stderr());
    assert.equal(await sender.exit(), 0, sender.stderr());
    assert.equal(await sha256File(join(dest, 'r.bin')), await sha256File(file));
    return JSON.parse(recipient.stdout().split('\n').find((l) => l.includes('"route"'))!) as { via: string };
  };
  assert.equal((await run([], 'both')).via, 'lan');
  assert.equal((await run(['--no-local'], 'relay-only')).via, 'relay');
});

test('--remember saves the relay in the config folder; later runs use it', async () => {
  const { mkdtemp: mkd, readFile: rf } = await import('node:fs/promises');
  const config = await mkd(join(dir, 'xdg-'));
  const env = { XDG_CONFIG_HOME: config };
  const first = runCli(['send', '--relay', relay.url, '--remember', '--no-local', '--text', 'one'], { env });
  const [, code] = await first.waitFor(/Code is: (\S+)/);
  assert.match(first.stderr(), /Remembered the relay/);
  assert.deepEqual(JSON.parse(await rf(join(config, 'tsc-croc', 'config.json'), 'utf8')), { relay: relay.url });
  const r1 = runCli(['receive', '--no-local', code!], { env });
  assert.equal(await r1.exit(), 0, r1.stderr());
  assert.equal(await first.exit(), 0);
  // no --relay now: the remembered one is used (the hint names it)
  const second = runCli(['send', '--no-local', '--text', 'two'], { env });
  const [, code2] = await second.waitFor(/Code is: (\S+)/);
  await second.waitFor(new RegExp(`tsc-croc receive --relay ${relay.url}`));
  const r2 = runCli(['receive', '--no-local', code2!], { env });
  assert.equal(await r2.exit(), 0, r2.stderr());
  assert.equal(r2.stdout(), 'two\n');
  assert.equal(await second.exit(), 0);
});
