/**
 * The single binary (`npm run build:binary`): built once into a scratch folder, then run end to end
 * with no node_modules and no Node on PATH (relay, send, receive; --version).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sha256File, spawnWatched, type Proc } from './helpers/cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORK = mkdtempSync(join(tmpdir(), 'tsc-croc-binary-'));
const BIN = join(WORK, 'bin', 'tsc-croc');
// SEA: Linux, macOS and Windows builds of Node 20; this test builds for the ones postject handles without signing tools
const SKIP = process.platform !== 'linux' ? `single-executable build is tested on Linux only (this is ${process.platform})` : false;

/** A child of the binary with an environment holding no PATH to Node: output and exit code, bounded. */
function run(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Proc {
  return spawnWatched(BIN, args, { cwd: opts.cwd ?? WORK, env: { PATH: '/nonexistent', HOME: WORK, XDG_CONFIG_HOME: join(WORK, 'config'), ...opts.env }, label: `tsc-croc ${args.join(' ')}` });
}

before(async () => {
  if (SKIP) return;
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [join(ROOT, 'scripts', 'build-binary.mjs'), '--out', BIN], { cwd: ROOT, timeout: 60_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`build:binary failed: ${err.message}\n${stderr}`)) : resolve(),
    ),
  );
});

after(() => rmSync(WORK, { recursive: true, force: true }));

test('the binary answers --version with no Node on PATH', { skip: SKIP }, async () => {
  const version = run(['--version']);
  assert.equal(await version.exit(), 0);
  const { VERSION } = await import('../src/cli/version.js');
  assert.equal(version.output(), `${VERSION}\n`);
});

test('the binary runs a relay, a send and a receive end to end; the file arrives intact', { skip: SKIP }, async () => {
  const relay = run(['relay', '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', '--quiet']);
  try {
    const [, httpPort] = await relay.waitFor(/HTTP on 127\.0\.0\.1:(\d+), TCP on 127\.0\.0\.1:\d+/);
    const url = `http://127.0.0.1:${httpPort}`;
    const file = join(WORK, 'payload.bin');
    writeFileSync(file, randomBytes(3 * 1024 * 1024 + 17));
    const out = join(WORK, 'out');
    mkdirSync(out);
    const code = `${randomBytes(3).toString('hex')}-binary-single-file`;
    const sender = run(['send', '--relay', url, '--no-local', file], { env: { TSC_CROC_SECRET: code } });
    await sender.waitFor(/Code is: /);
    const recipient = run(['receive', '--relay', url, '--no-local', '--yes', '--out', out], { env: { TSC_CROC_SECRET: code } });
    assert.equal(await recipient.exit(), 0, recipient.output());
    assert.equal(await sender.exit(), 0, sender.output());
    assert.equal(await sha256File(join(out, 'payload.bin')), await sha256File(file));
    assert.ok(!/ExperimentalWarning|Single executable/i.test(sender.output() + recipient.output()), 'no SEA warning');
    // the browser page, from the binary's own assets (no dist/web beside it): served, and named to the sender
    assert.match(sender.output(), new RegExp(`Or, with only a browser, open:\\n  ${url.replace(/\./g, '\\.')}/#${code}`));
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.match(await page.text(), /<script type="module" src="\/app.js">/);
    for (const asset of ['/app.js', '/app.css']) assert.equal((await fetch(`${url}${asset}`)).status, 200, asset);
  } finally {
    relay.child.kill('SIGTERM');
    assert.equal(await relay.exit(10_000), 0, relay.output());
  }
});
