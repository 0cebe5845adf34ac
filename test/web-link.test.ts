/**
 * The sender's hint names the relay's browser page (issue 14): with a relay that serves it, the
 * built CLI prints `<relay>/#<code>` after the receive command, `--qr` encodes that link, and
 * `--json`'s code event carries it; with `--no-web` (the relay's `web: false`) none of them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startRelay, type RunningRelay } from '../src/relay/index.js';
import { runCli } from './helpers/cli.js';

let dir: string;
let file: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-weblink-'));
  file = join(dir, 'a.txt');
  await writeFile(file, 'hello');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Start a send through `relay`, read what it printed up to the hint, then stop it (Ctrl-C). */
async function hint(relay: RunningRelay, extra: string[]): Promise<string> {
  const sender = runCli(['send', '--no-local', '--no-progress', '--relay', relay.httpUrl, ...extra, file]);
  try {
    await sender.waitFor(extra.includes('--json') ? /"event":"code"/ : /TSC_CROC_SECRET=\S+ tsc-croc receive/);
    if (extra.includes('--qr')) await sender.waitFor(/▀|▄|█/);
    return sender.stdout() + sender.stderr();
  } finally {
    sender.child.kill('SIGINT');
    await sender.exit(15_000);
  }
}

test('a relay with the page: the hint gives its link with the code in the fragment, --json too', { timeout: 60_000 }, async () => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0, tcpPort: 0 });
  try {
    const text = await hint(relay, []);
    const code = /Code is: (\S+)/.exec(text)?.[1];
    assert.ok(code, text);
    assert.ok(text.includes(`Or, with only a browser, open:\n  ${relay.httpUrl}/#${code}\n`), text);
    const json = await hint(relay, ['--json']);
    const event = json.split('\n').filter((l) => l.includes('"event":"code"')).map((l) => JSON.parse(l) as { code: string; web?: string })[0]!;
    assert.equal(event.web, `${relay.httpUrl}/#${event.code}`);
  } finally {
    await relay.close();
  }
});

test('--no-web: no link; --qr then encodes the receive command', { timeout: 60_000 }, async () => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0, tcpPort: 0, web: false });
  try {
    const text = await hint(relay, ['--qr']);
    assert.doesNotMatch(text, /with only a browser|\/#/);
    const json = await hint(relay, ['--json']);
    assert.doesNotMatch(json, /"web"/);
  } finally {
    await relay.close();
  }
});
