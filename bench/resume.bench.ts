/**
 * `npm run bench:resume` (also the second half of `npm run bench`): what resuming costs.
 *
 * With the built CLI as relay, sender and recipient (three processes on 127.0.0.1):
 * 1. whole: send a random file (BENCH_BYTES, default 1 GiB) from start to end;
 * 2. interrupted: send it again into a fresh folder, and SIGKILL the recipient once its --json
 *    progress passes half (the sender runs with --reconnect 0, so it ends at once);
 * 3. resumed: run both again (a new code): the recipient announces what it holds, the sender
 *    proves that prefix (one read of it) and sends the rest.
 * Times are from starting the recipient to both processes' exit (the handshake included; scrypt
 * and SPAKE2 cost ~0.3 s per side). The received file is checked by SHA-256, untimed.
 *
 * Environment: BENCH_BYTES (default 1073741824), BENCH_TIMEOUT_MS (default 600000 per process).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256File, writeRandomFile } from './files.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const bytes = Number(process.env.BENCH_BYTES ?? 2 ** 30);
const timeoutMs = Number(process.env.BENCH_TIMEOUT_MS ?? 600_000);
if (!Number.isSafeInteger(bytes) || bytes < 4 * 2 ** 20) throw new RangeError('BENCH_BYTES must be an integer of at least 4 MiB');

interface Run {
  child: ChildProcess;
  out: string;
  err: string;
  exit: Promise<number>;
}

function cli(args: string[], env: Record<string, string> = {}): Run {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of Object.keys(childEnv)) if (k.startsWith('TSC_CROC_') && !(k in env)) delete childEnv[k];
  const child = spawn(process.execPath, [CLI, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = { child, out: '', err: '', exit: Promise.resolve(0) };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (run.out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (run.err += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  run.exit = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      clearTimeout(killer);
      resolve(code ?? (signal ? 128 : -1));
    }),
  );
  return run;
}

function until(run: Run, test: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (test()) {
        run.child.stdout!.off('data', check);
        run.child.stderr!.off('data', check);
        resolve();
      }
    };
    run.child.stdout!.on('data', check);
    run.child.stderr!.on('data', check);
    void run.exit.then(() => (test() ? resolve() : reject(new Error(`exited first:\n${run.err}`))));
    check();
  });
}

const jsonEvents = (r: Run) =>
  r.out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

let codes = 0;
async function transfer(relay: string, file: string, out: string, opts: { killAt?: number } = {}) {
  const code = `${7700 + codes++}-bench-resume-words`;
  const sender = cli(['send', '--relay', relay, '--no-local', '--json', ...(opts.killAt ? ['--reconnect', '0'] : []), file], { TSC_CROC_SECRET: code });
  await until(sender, () => sender.out.includes('"event":"code"'));
  const started = performance.now();
  const recipient = cli(['receive', '--relay', relay, '--no-local', '--json', '--yes', '--out', out], { TSC_CROC_SECRET: code });
  if (opts.killAt !== undefined) {
    const at = opts.killAt;
    await until(recipient, () => jsonEvents(recipient).some((e) => e.event === 'progress' && (e.bytes as number) >= at));
    recipient.child.kill('SIGKILL');
  }
  const [rc, sc] = [await recipient.exit, await sender.exit];
  const seconds = (performance.now() - started) / 1000;
  if (opts.killAt === undefined && (rc !== 0 || sc !== 0)) throw new Error(`transfer failed (${rc}/${sc}):\n${recipient.err}\n${sender.err}`);
  return { seconds, sender, recipient };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-bench-resume-'));
  const relay = cli(['relay', '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', '--quiet'], {
    TSC_CROC_RELAY_JOIN_RATE: '100000',
    TSC_CROC_RELAY_CHANNEL_RATE: '1000000',
  });
  try {
    const file = join(dir, 'data.bin');
    process.stderr.write(`writing ${bytes} random bytes...\n`);
    await writeRandomFile(file, bytes);
    const expected = await sha256File(file);
    await until(relay, () => /HTTP on 127\.0\.0\.1:\d+/.test(relay.err));
    const url = `http://127.0.0.1:${/HTTP on 127\.0\.0\.1:(\d+)/.exec(relay.err)![1]}`;

    process.stderr.write('whole...\n');
    await mkdir(join(dir, 'whole'));
    const whole = await transfer(url, file, join(dir, 'whole'));
    if ((await sha256File(join(dir, 'whole', 'data.bin'))) !== expected) throw new Error('whole: hash mismatch');
    await rm(join(dir, 'whole'), { recursive: true });

    process.stderr.write('interrupted at half...\n');
    const out = join(dir, 'resumed');
    await mkdir(out);
    await transfer(url, file, out, { killAt: Math.floor(bytes / 2) });
    const partial = (await readdir(out)).filter((n) => n.startsWith('.tsc-croc-'));
    process.stderr.write(`left: ${partial.join(', ')}\n`);

    process.stderr.write('resumed...\n');
    const resumed = await transfer(url, file, out);
    if ((await sha256File(join(out, 'data.bin'))) !== expected) throw new Error('resumed: hash mismatch');
    const held = (jsonEvents(resumed.recipient).find((e) => e.event === 'offer')?.offer as { heldBytes: number }).heldBytes;
    const done = jsonEvents(resumed.sender).find((e) => e.event === 'done') as { resumedBytes: number };
    const sent = bytes - done.resumedBytes;
    const report = {
      bytes,
      wholeSeconds: +whole.seconds.toFixed(2),
      resumedSeconds: +resumed.seconds.toFixed(2),
      ratio: +(resumed.seconds / whole.seconds).toFixed(3),
      heldBytes: held,
      sentOnResume: sent,
      sentFraction: +(sent / bytes).toFixed(3),
    };
    process.stdout.write(
      `resume of a ${(bytes / 2 ** 30).toFixed(2)} GiB file interrupted at half:\n` +
        `  whole transfer   ${report.wholeSeconds} s\n` +
        `  resumed          ${report.resumedSeconds} s  (${(report.ratio * 100).toFixed(1)}% of whole)\n` +
        `  held / sent      ${held} / ${sent} bytes (${(report.sentFraction * 100).toFixed(1)}% sent again)\n` +
        `${JSON.stringify(report)}\n`,
    );
  } finally {
    relay.child.kill('SIGTERM');
    await relay.exit;
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
