/**
 * The executable's V8 code cache (src/cli/code-cache.ts): the built CLI, spawned, with its own
 * cache directory. What V8 did with a cache is read from the CLI's trace (TSC_CROC_TRACE=1:
 * "cli: code cache none|accepted|rejected|off").
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, sha256File, startCliRelay } from './helpers/cli.js';

let relay: Awaited<ReturnType<typeof startCliRelay>>;
before(async () => {
  relay = await startCliRelay();
});
after(async () => {
  await relay.stop();
});

const outcome = (stderr: string) => /cli: code cache (\w+)/.exec(stderr)?.[1];

async function help(cacheHome: string, env: NodeJS.ProcessEnv = {}) {
  const p = runCli(['send', '--help'], { env: { XDG_CACHE_HOME: cacheHome, TSC_CROC_TRACE: '1', ...env } });
  assert.equal(await p.exit(), 0, p.output());
  assert.match(p.stdout(), /^Usage: tsc-croc send/m);
  return { cache: outcome(p.stderr()), files: (() => {
    try {
      return readdirSync(join(cacheHome, 'tsc-croc'));
    } catch {
      return [];
    }
  })() };
}

test('the first run of a command writes its code cache (0600 in a 0700 folder), the next runs take it', async () => {
  const home = mkdtempSync(join(tmpdir(), 'tsc-croc-cache-'));
  const first = await help(home);
  assert.equal(first.cache, 'none');
  assert.equal(first.files.length, 1, `one cache file: ${first.files.join(', ')}`);
  const [name] = first.files;
  assert.match(name!, /^cli-[0-9a-f]{16}-node[\d.]+-\w+-.+-send\.v8$/);
  assert.equal(statSync(join(home, 'tsc-croc')).mode & 0o777, 0o700);
  assert.equal(statSync(join(home, 'tsc-croc', name!)).mode & 0o777, 0o600);
  const bytes = readFileSync(join(home, 'tsc-croc', name!));
  assert.ok(bytes.length > 10_000, `a cache of ${bytes.length} bytes`);
  for (let i = 0; i < 2; i++) {
    const again = await help(home);
    assert.equal(again.cache, 'accepted');
    assert.deepEqual(again.files, [name]);
  }
  assert.ok(readFileSync(join(home, 'tsc-croc', name!)).equals(bytes), 'an accepted cache is not written again');
});

test('a damaged cache is refused and written again; a cache others can write is not read; TSC_CROC_CODE_CACHE=off writes none', async () => {
  const home = mkdtempSync(join(tmpdir(), 'tsc-croc-cache-'));
  await help(home);
  const [name] = readdirSync(join(home, 'tsc-croc'));
  const file = join(home, 'tsc-croc', name!);
  const size = statSync(file).size;
  // garbage of the same length: V8's own checks refuse it, the CLI compiles as usual and replaces it
  writeFileSync(file, randomBytes(size));
  assert.equal((await help(home)).cache, 'rejected');
  assert.equal((await help(home)).cache, 'accepted');
  // a cache file (or folder) another user could have written is never loaded: it would be code run
  chmodSync(file, 0o666);
  assert.equal((await help(home)).cache, 'none');
  assert.equal(statSync(file).mode & 0o777, 0o600, 'replaced by one of our own');
  chmodSync(join(home, 'tsc-croc'), 0o777);
  assert.equal((await help(home)).cache, 'none');
  chmodSync(join(home, 'tsc-croc'), 0o700);
  assert.equal((await help(home)).cache, 'accepted');

  const off = mkdtempSync(join(tmpdir(), 'tsc-croc-cache-'));
  const r = await help(off, { TSC_CROC_CODE_CACHE: 'off' });
  assert.equal(r.cache, 'off');
  assert.deepEqual(r.files, []);
});

test('a transfer big enough to run the record collector (which turns a V8 flag on and off) leaves caches the next transfer takes', async () => {
  const home = mkdtempSync(join(tmpdir(), 'tsc-croc-cache-'));
  const dir = mkdtempSync(join(tmpdir(), 'tsc-croc-cache-data-'));
  const file = join(dir, 'eight.bin');
  writeFileSync(file, randomBytes(8 * 1024 * 1024));
  const want = await sha256File(file);
  const env = { XDG_CACHE_HOME: home, TSC_CROC_TRACE: '1' };
  for (const [round, expected] of [[1, 'none'], [2, 'accepted']] as const) {
    const code = `${40 + round}-abandon-ability-able`;
    const out = mkdtempSync(join(tmpdir(), 'tsc-croc-cache-out-'));
    const sender = runCli(['send', '--relay', relay.url, '--no-local', '--no-progress', file], { env: { ...env, TSC_CROC_SECRET: code } });
    await sender.waitFor(/Code is:/);
    const recipient = runCli(['receive', '--relay', relay.url, '--no-local', '--yes', '--no-progress'], { env: { ...env, TSC_CROC_SECRET: code }, cwd: out });
    assert.equal(await recipient.exit(60_000), 0, recipient.output());
    assert.equal(await sender.exit(60_000), 0, sender.output());
    assert.equal(await sha256File(join(out, 'eight.bin')), want);
    assert.equal(outcome(sender.stderr()), expected, `round ${round}: the sender's cache`);
    assert.equal(outcome(recipient.stderr()), expected, `round ${round}: the recipient's cache`);
  }
  assert.deepEqual(readdirSync(join(home, 'tsc-croc')).map((f) => f.replace(/.*-/, '')).sort(), ['receive.v8', 'send.v8']);
});
