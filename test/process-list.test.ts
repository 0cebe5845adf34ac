/**
 * The code in a process list (croc's CVE-2023-43621): another local user polls /proc/PID/cmdline
 * of every process, every millisecond, while real transfers run through the built CLI. In the
 * recommended forms (the code from TSC_CROC_SECRET, as the prompt gives it too) it never sees the
 * code, so it cannot take the file. In the argument form (`send --code`, `receive CODE`) the
 * entry point hides the code first thing (src/cli/hide-secrets.ts): the test checks that the
 * hidden form is what remains, measures the window before that (spawn to scrub, many runs) and
 * reports what the poller saw. Run as root, the poller runs as `nobody`; otherwise as the same
 * user (which can read even more, /proc/PID/environ included), and the test says so.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, runCli, sha256File, startCliRelay } from './helpers/cli.js';

let relay: Awaited<ReturnType<typeof startCliRelay>>;
let dir: string;

before(async () => {
  relay = await startCliRelay();
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-ps-'));
});

after(async () => {
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * The poller: every millisecond, the command line of every process; each distinct one that
 * mentions tsc-croc is printed once (JSON). It stops when its stdin closes, and prints how many
 * scans it made.
 */
const POLLER = `
const fs = require('node:fs');
const seen = new Set();
let scans = 0;
let stop = false;
process.stdin.on('end', () => (stop = true)).resume();
const t0 = Date.now();
const scan = () => {
  scans++;
  for (const d of fs.readdirSync('/proc')) {
    if (d.charCodeAt(0) < 48 || d.charCodeAt(0) > 57) continue;
    let s;
    try { s = fs.readFileSync('/proc/' + d + '/cmdline', 'latin1'); } catch { continue; }
    if (!s.includes('tsc-croc') || seen.has(s)) continue;
    seen.add(s);
    process.stdout.write(JSON.stringify({ cmdline: s.split('\\0').join(' ').trim() }) + '\\n');
  }
  if (stop) process.stdout.write(JSON.stringify({ scans, ms: Date.now() - t0 }) + '\\n');
  else setTimeout(scan, 1);
};
scan();
`;

interface Poller {
  child: ChildProcess;
  /** Stop it; resolves with every command line it saw and its scan rate. */
  stop: () => Promise<{ cmdlines: string[]; scans: number; ms: number }>;
}

function otherUser(t: TestContext): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) {
    t.diagnostic('not root: the poller runs as this same user (another user could read no more than it does)');
    return null;
  }
  try {
    return { uid: Number(execFileSync('id', ['-u', 'nobody']).toString()), gid: Number(execFileSync('id', ['-g', 'nobody']).toString()) };
  } catch {
    t.diagnostic('no user "nobody": the poller runs as root');
    return null;
  }
}

function startPoller(t: TestContext): Poller {
  const who = otherUser(t);
  const child = spawn(process.execPath, ['-e', POLLER], { cwd: '/', stdio: ['pipe', 'pipe', 'pipe'], ...(who ?? {}) });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    stop: async () => {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      const lines = out.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { cmdline?: string; scans?: number; ms?: number });
      const tail = lines.at(-1);
      assert.ok(tail?.scans !== undefined, `the poller ran to its end${err ? `: ${err}` : ''}`);
      return { cmdlines: lines.flatMap((l) => (l.cmdline === undefined ? [] : [l.cmdline])), scans: tail.scans, ms: tail.ms! };
    },
  };
}

/** The words of a code (the channel is public): what must not be seen. */
const secretOf = (code: string) => code.split('-').slice(1).join('-');

async function source(name: string): Promise<{ file: string; out: string }> {
  const src = join(dir, `${name}-src`);
  const out = join(dir, `${name}-out`);
  await mkdir(src);
  await mkdir(out);
  const file = join(src, `${name}.bin`);
  await writeFile(file, randomBytes(256 * 1024));
  return { file, out };
}

test('the recommended forms (code from the environment, as from the prompt): a poller of /proc never sees the code', async (t) => {
  const poller = startPoller(t);
  // 1. a code the sender drew, typed (here: set) on the other side
  const a = await source('drawn');
  const sender = runCli(['send', '--relay', relay.url, '--no-local', a.file]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  // the hint shows the prompt and the variable, never the code as an argument
  await sender.waitFor(/run:\n {2}tsc-croc receive --relay \S+\nand type the code/);
  assert.doesNotMatch(sender.stderr(), new RegExp(`tsc-croc receive[^\\n]* ${code}`));
  const recipient = runCli(['receive', '--relay', relay.url, '--no-local', '--yes', '--out', a.out], { env: { TSC_CROC_SECRET: code! } });
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(await sha256File(join(a.out, 'drawn.bin')), await sha256File(a.file));
  // 2. a code the user chose, in the environment on both sides
  const b = await source('chosen');
  const chosen = `${700 + (process.pid % 200)}-${randomBytes(6).toString('hex')}-secretword`;
  const sender2 = runCli(['send', '--relay', relay.url, '--no-local', b.file], { env: { TSC_CROC_SECRET: chosen } });
  await sender2.waitFor(/Code is: /);
  const recipient2 = runCli(['receive', '--relay', relay.url, '--no-local', '--yes', '--out', b.out], { env: { TSC_CROC_SECRET: chosen } });
  assert.equal(await recipient2.exit(), 0, recipient2.stderr());
  assert.equal(await sender2.exit(), 0, sender2.stderr());
  assert.equal(await sha256File(join(b.out, 'chosen.bin')), await sha256File(b.file));

  const seen = await poller.stop();
  t.diagnostic(`poller: ${seen.scans} scans of /proc in ${seen.ms} ms (one every ${(seen.ms / seen.scans).toFixed(2)} ms), ${seen.cmdlines.length} distinct tsc-croc command lines`);
  // the poller works: it saw the four transfer processes
  assert.ok(seen.cmdlines.some((c) => c.includes(' receive ') && c.includes(a.out)), `the poller saw the recipient:\n${seen.cmdlines.join('\n')}`);
  for (const secret of [secretOf(code!), secretOf(chosen)])
    for (const c of seen.cmdlines) assert.ok(!c.includes(secret), `the poller saw the code: ${c}`);
});

test('the argument form (send --code, receive CODE): hidden first thing; the window before it is measured and reported', async (t) => {
  // the window: from spawn to the moment the code leaves /proc/PID/cmdline, polled without pause
  const runs = 15;
  const windows: number[] = [];
  const probe = `${800 + (process.pid % 100)}-abandon-ability-able`;
  for (let r = 0; r < runs; r++) {
    const child = spawn(process.execPath, [CLI, 'receive', '--relay', 'http://127.0.0.1:1', '--no-local', probe], { stdio: 'ignore', env: { ...process.env, XDG_CONFIG_HOME: dir } });
    const t0 = process.hrtime.bigint();
    let last = 0;
    let masked = '';
    for (let i = 0; i < 1_000_000; i++) {
      let s = '';
      try {
        s = readFileSync(`/proc/${child.pid}/cmdline`, 'latin1');
      } catch {
        break; // gone
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (s.includes('abandon-ability-able')) last = ms;
      else if (s.includes('receive')) {
        masked = s.split('\0').join(' ').trim();
        break;
      }
      if (ms > 10_000) break;
    }
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
    assert.match(masked, / receive --relay http:\/\/127\.0\.0\.1:1 --no-local \*\*\*$/, 'what remains is the command line with the code hidden');
    windows.push(last);
  }
  windows.sort((x, y) => x - y);
  t.diagnostic(`code readable in /proc/PID/cmdline after spawn: median ${windows[runs >> 1]!.toFixed(1)} ms, max ${windows.at(-1)!.toFixed(1)} ms, min ${windows[0]!.toFixed(1)} ms (${runs} runs)`);

  // a real transfer in the argument form, watched by the poller
  const poller = startPoller(t);
  const a = await source('argument');
  const code = `${900 + (process.pid % 90)}-${randomBytes(6).toString('hex')}-argword`;
  const sender = runCli(['send', '--relay', relay.url, '--no-local', '--code', code, a.file]);
  await sender.waitFor(/Code is: /);
  assert.match(sender.stderr(), /warning: a code given as an argument is visible to other users/);
  const recipient = runCli(['receive', '--relay', relay.url, '--no-local', '--yes', '--out', a.out, code]);
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.equal(await sha256File(join(a.out, 'argument.bin')), await sha256File(a.file));
  const seen = await poller.stop();
  const leaked = seen.cmdlines.filter((c) => c.includes(secretOf(code)));
  assert.ok(seen.cmdlines.some((c) => c.includes('--code ***')), `the poller saw the sender with its code hidden:\n${seen.cmdlines.join('\n')}`);
  t.diagnostic(
    `argument form: the poller (${seen.scans} scans in ${seen.ms} ms) saw the code in ${leaked.length} command line(s)${leaked.length > 0 ? ` (${leaked.map((c) => (c.includes(' send ') ? 'send --code' : 'receive CODE')).join(', ')}): the window above is enough to read it` : ''}`,
  );
});
