/**
 * croc's habits through the built CLI against a real relay on 127.0.0.1 (issue 12): `tsc-croc CODE`
 * receives; a fixed code is used again right after the last transfer on it ended (done, declined,
 * out of wrong attempts, cancelled); a recipient that starts first waits for its sender (relay and
 * local network), up to --wait; network errors in plain words.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TscCrocError } from '../src/core/errors.js';
import { netError, netReason, type NetTarget } from '../src/transfer/net-errors.js';
import { RelayClient } from '../src/transfer/relay-client.js';
import { type Proc, runCli, sha256File, startCliRelay } from './helpers/cli.js';

const T = { timeout: 120_000 };
/** A fixed code, as `send --code` / TSC_CROC_SECRET give it. */
const CODE = '5126-ginger-habit-orbit';
/** Node's error codes, which must not reach a person's terminal. */
const NODE_CODE = /\b(E[A-Z]{3,}|HPE_[A-Z_]+|ERR_SSL_[A-Z_]+|EAI_[A-Z]+)\b/;

let relay: Awaited<ReturnType<typeof startCliRelay>>;
let dir: string;
let n = 0;

before(async () => {
  relay = await startCliRelay();
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-habits-'));
});

after(async () => {
  const code = await relay.stop();
  assert.equal(code, 0, `relay exit code ${code}\n${relay.proc.stderr()}`);
  await rm(dir, { recursive: true, force: true });
});

/** A fresh file of `size` random bytes and an empty output folder. */
async function fresh(size = 200_000): Promise<{ file: string; out: string; name: string }> {
  const i = ++n;
  const src = join(dir, `src${i}`);
  const out = join(dir, `out${i}`);
  await mkdir(src);
  await mkdir(out);
  const name = `f${i}.bin`;
  const file = join(src, name);
  await writeFile(file, randomBytes(size));
  return { file, out, name };
}

/** The fixed code's sender, on the relay only. */
function sendFixed(file: string, code = CODE): Proc {
  return runCli(['send', '--no-local', '--relay', relay.url, file], { env: { TSC_CROC_SECRET: code } });
}

/** One whole transfer with the fixed code: the sender first, then `tsc-croc --yes ... CODE`; the file arrives intact. */
async function transferWithFixedCode(what: string): Promise<void> {
  const { file, out, name } = await fresh();
  const sender = sendFixed(file);
  await sender.waitFor(/Waiting for the other side/);
  const recipient = runCli(['--no-local', '--relay', relay.url, '--yes', '--out', out, CODE]);
  assert.equal(await recipient.exit(), 0, `${what}: ${recipient.output()}`);
  assert.equal(await sender.exit(), 0, `${what}: ${sender.output()}`);
  assert.equal(await sha256File(join(out, name)), await sha256File(file), what);
}

/** The command line another user of this machine sees for `p`. */
async function cmdline(p: Proc): Promise<string> {
  return (await readFile(`/proc/${p.child.pid}/cmdline`, 'utf8')).replaceAll('\0', ' ');
}

describe('tsc-croc CODE receives (croc\'s habit)', () => {
  test('`tsc-croc CODE` (a text) and `tsc-croc --relay URL --yes CODE` (a file) receive; the code is hidden from the process list', T, async () => {
    const text = runCli(['send', '--no-local', '--relay', relay.url, '--text', 'hello from a habit'], { env: { TSC_CROC_SECRET: '7301-ginger-habit-orbit' } });
    await text.waitFor(/Waiting for the other side/);
    // the bare form: the relay from the environment, the code as the only argument
    const bare = runCli(['7301-ginger-habit-orbit'], { env: { TSC_CROC_RELAY: relay.url } });
    assert.equal(await bare.exit(), 0, bare.output());
    assert.equal(bare.stdout(), 'hello from a habit\n');
    assert.match(bare.stderr(), /warning: a code given as an argument is visible/);
    assert.equal(await text.exit(), 0, text.output());

    const { file, out, name } = await fresh();
    // the recipient first: it waits for the sender, so its command line can be read meanwhile
    const recipient = runCli(['--relay', relay.url, '--yes', '--no-local', '--out', out, '7302-ginger-habit-orbit']);
    await recipient.waitFor(/Waiting for the sender/);
    const seen = await cmdline(recipient);
    assert.doesNotMatch(seen, /ginger|orbit|7302/, seen);
    assert.match(seen, /--relay http:\/\/127\.0\.0\.1:\d+ --yes --no-local --out \S+ \*\*\*/);
    const sender = sendFixed(file, '7302-ginger-habit-orbit');
    assert.equal(await recipient.exit(), 0, recipient.output());
    assert.equal(await sender.exit(), 0, sender.output());
    assert.equal(await sha256File(join(out, name)), await sha256File(file));
  });

  test('an unknown word that is no code is still an unknown command (exit 2, one line and a hint); no arguments prints the help', T, async () => {
    for (const word of ['sned', 'foo-bar']) {
      const p = runCli([word]);
      assert.equal(await p.exit(), 2, p.output());
      assert.match(p.stderr(), new RegExp(`unknown command '${word}'`));
      assert.ok(p.stderr().split('\n').filter(Boolean).length <= 2, p.stderr());
    }
    const help = runCli([]);
    await help.exit();
    assert.match(help.output(), /Usage: tsc-croc/);
  });

  test('with the code in TSC_CROC_SECRET, `tsc-croc [receive options]` receives; no arguments, --help and --version still answer for themselves', T, async () => {
    const { file, out, name } = await fresh();
    const sender = sendFixed(file, '7303-ginger-habit-orbit');
    await sender.waitFor(/Waiting for the other side/);
    const recipient = runCli(['--no-local', '--relay', relay.url, '--yes', '--out', out], { env: { TSC_CROC_SECRET: '7303-ginger-habit-orbit' } });
    assert.equal(await recipient.exit(), 0, recipient.output());
    assert.doesNotMatch(recipient.stderr(), /warning: a code given as an argument/, 'the code was not an argument');
    assert.equal(await sender.exit(), 0, sender.output());
    assert.equal(await sha256File(join(out, name)), await sha256File(file));
    for (const args of [[], ['--help'], ['--version']]) {
      const p = runCli(args, { env: { TSC_CROC_SECRET: '7304-ginger-habit-orbit' } });
      await p.exit();
      assert.match(p.output(), args[0] === '--version' ? /^\d+\.\d+\.\d+\n$/ : /Usage: tsc-croc/, JSON.stringify(args));
    }
  });
});

describe('a fixed code can be used again as soon as the transfer on it ended', () => {
  test('(a) after a completed transfer: the same code at once', T, async () => {
    await transferWithFixedCode('first');
    await transferWithFixedCode('again right after');
  });

  test('(b) after a decline', T, async () => {
    const { file, out } = await fresh();
    const sender = sendFixed(file);
    await sender.waitFor(/Waiting for the other side/);
    // not a terminal and no --yes: nobody can accept, so the offer is declined
    const decliner = runCli(['--no-local', '--relay', relay.url, '--out', out, CODE]);
    assert.equal(await decliner.exit(), 4, decliner.output());
    assert.equal(await sender.exit(), 4, sender.output());
    assert.match(sender.stderr(), /declined/);
    assert.deepEqual(await readdir(out), []);
    await transferWithFixedCode('after a decline');
  });

  test('(c) after the wrong attempts that ended the channel', T, async () => {
    const { file, out } = await fresh();
    const sender = sendFixed(file);
    await sender.waitFor(/Waiting for the other side/);
    for (let i = 1; i <= 5; i++) {
      const wrong = runCli(['--no-local', '--relay', relay.url, '--yes', '--out', out, '5126-ginger-habit-other']);
      assert.equal(await wrong.exit(), 3, wrong.output());
    }
    assert.equal(await sender.exit(), 3, sender.output());
    assert.match(sender.stderr(), /5 attempts failed/);
    await transferWithFixedCode('after 5 wrong attempts');
  });

  test('(d) after the sender was cancelled (Ctrl-C) while waiting', T, async () => {
    const { file } = await fresh();
    const sender = sendFixed(file);
    await sender.waitFor(/Waiting for the other side/);
    sender.child.kill('SIGINT');
    assert.equal(await sender.exit(), 4, sender.output());
    await transferWithFixedCode('after a cancelled sender');
  });
});

describe('a recipient that starts first waits for its sender', () => {
  test('on the relay: the recipient first, then the sender: the file arrives', T, async () => {
    const { file, out, name } = await fresh();
    const recipient = runCli(['--no-local', '--relay', relay.url, '--yes', '--out', out, CODE]);
    const [line] = await recipient.waitFor(/Waiting for the sender on the relay\.\.\. \(up to 5 min; Ctrl-C to stop\)/);
    assert.doesNotMatch(recipient.output(), /ginger|orbit/, 'the code is never printed');
    assert.ok(line);
    const sender = sendFixed(file);
    assert.equal(await recipient.exit(), 0, recipient.output());
    assert.equal(await sender.exit(), 0, sender.output());
    assert.equal(await sha256File(join(out, name)), await sha256File(file));
  });

  test('on the local network (no relay configured, loopback only): the recipient first, then the sender', T, async () => {
    const { file, out, name } = await fresh();
    const recipient = runCli(['--yes', '--out', out, '--interface', 'lo', '6120-ginger-habit-orbit']);
    await recipient.waitFor(/Waiting for the sender on the local network\.\.\./);
    const sender = runCli(['send', '--interface', 'lo', file], { env: { TSC_CROC_SECRET: '6120-ginger-habit-orbit' } });
    assert.equal(await recipient.exit(), 0, recipient.output());
    assert.equal(await sender.exit(), 0, sender.output());
    assert.equal(await sha256File(join(out, name)), await sha256File(file));
  });

  test('--wait 2 and no sender: a clear error naming what to check, exit 5 (a time-out), the code never printed', T, async () => {
    const { out } = await fresh(1);
    const recipient = runCli(['--no-local', '--relay', relay.url, '--yes', '--wait', '2', '--out', out, '8011-ginger-habit-orbit']);
    assert.equal(await recipient.exit(30_000), 5, recipient.output());
    assert.match(recipient.stderr(), /Waiting for the sender on the relay\.\.\. \(up to 2 s; Ctrl-C to stop\)/);
    assert.match(recipient.stderr(), /no sender started on the relay at http:\/\/127\.0\.0\.1:\d+ within 2 s: check that the sender is running, that the number at the start of the code is the one it shows, and that it uses this same relay \[ERR_TIMEOUT\]/);
    assert.doesNotMatch(recipient.output(), /ginger|orbit/);
    // --wait 0: at once, as before
    const atOnce = runCli(['--no-local', '--relay', relay.url, '--yes', '--wait', '0', '--out', out, '8012-ginger-habit-orbit']);
    assert.equal(await atOnce.exit(), 1, atOnce.output());
    assert.match(atOnce.stderr(), /no sender is waiting on that channel: check the code, and that both sides use the same relay \[ERR_CHANNEL_NOT_FOUND\]/);
  });

  test('Ctrl-C while waiting cancels cleanly (exit 4)', T, async () => {
    const { out } = await fresh(1);
    const recipient = runCli(['--no-local', '--relay', relay.url, '--yes', '--out', out, '8013-ginger-habit-orbit']);
    await recipient.waitFor(/Waiting for the sender on the relay/);
    recipient.child.kill('SIGINT');
    assert.equal(await recipient.exit(), 4, recipient.output());
    assert.match(recipient.stderr(), /cancelled \[ERR_CANCELLED\]/);
  });
});

describe('network errors in plain words', () => {
  let html: Server;
  let htmlUrl: string;
  before(async () => {
    html = createHttpServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<html><body>Not Found</body></html>');
    });
    await new Promise<void>((r) => html.listen(0, '127.0.0.1', r));
    htmlUrl = `http://127.0.0.1:${(html.address() as { port: number }).port}`;
  });
  after(() => new Promise<void>((r) => html.close(() => r())));

  async function closedPort(): Promise<number> {
    const srv = createTcpServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    return port;
  }

  test('the CLI: a closed port, the relay\'s TCP port given as its URL, a web server answering HTML', T, async () => {
    const cases: [string, RegExp, number][] = [
      [`http://127.0.0.1:${await closedPort()}`, /cannot reach the relay at http:\/\/127\.0\.0\.1:\d+: nothing accepts connections there: is the relay running, and is the port right\? \(its HTTP port is usually 9009\) \[ERR_RELAY_UNREACHABLE\]/, 5],
      [`http://127.0.0.1:${relay.tcpPort}`, /cannot reach the relay at http:\/\/127\.0\.0\.1:\d+: it answered, but not as a tsc-croc relay \(is that its TCP port\? the HTTP port is usually 9009\)/, 5],
      [htmlUrl, /the server at http:\/\/127\.0\.0\.1:\d+ answered \(HTTP 404\), but not as a tsc-croc relay: check the address and port/, 1],
    ];
    const { file, out } = await fresh(10);
    for (const [url, re, exit] of cases) {
      for (const args of [['send', '--no-local', '--relay', url, file], ['--no-local', '--relay', url, '--yes', '--out', out, CODE]]) {
        const p = runCli(args);
        assert.equal(await p.exit(), exit, p.output());
        assert.match(p.stderr(), re);
        assert.doesNotMatch(p.stderr(), NODE_CODE, p.stderr());
      }
    }
  });

  test('the mapping: name look-ups, resets, time-outs, unreachable hosts, TLS; the Node error stays the cause', () => {
    // errors shaped as Node gives them (a real look-up of a name that does not exist would ask the
    // machine's name server, a packet off this machine: not in a test)
    const http: NetTarget = { kind: 'relay-http', where: 'http://relay.example:9009', host: 'relay.example' };
    const tcp: NetTarget = { kind: 'relay-tcp', where: 'relay.example:9010', host: 'relay.example' };
    const err = (code: string, syscall = 'connect') => Object.assign(new Error(`${syscall} ${code} relay.example`), { code, syscall, errno: -3008, hostname: 'relay.example' });
    const expect: [string, RegExp][] = [
      ['ENOTFOUND', /the name relay\.example does not exist: check the spelling of the relay address/],
      ['EAI_AGAIN', /the name relay\.example could not be looked up \(no answer from the name server\): check this computer's network connection/],
      ['ECONNREFUSED', /nothing accepts connections there/],
      ['ECONNRESET', /the connection was cut/],
      ['ETIMEDOUT', /no answer in time: check the address, and that no firewall blocks the port/],
      ['EHOSTUNREACH', /no route to relay\.example/],
      ['ENETUNREACH', /no route to relay\.example/],
      ['HPE_INVALID_CONSTANT', /it answered, but not as a tsc-croc relay \(is that its TCP port\?/],
      ['DEPTH_ZERO_SELF_SIGNED_CERT', /its TLS certificate was not accepted/],
      ['ERR_TLS_CERT_ALTNAME_INVALID', /its TLS certificate was not accepted/],
      ['CERT_HAS_EXPIRED', /its TLS certificate was not accepted/],
      ['EPROTO', /the port may not speak https/],
      ['ESOMETHINGNEW', /the network failed: check the address/],
    ];
    for (const [code, re] of expect) {
      const e = netError(err(code, code.startsWith('E') ? 'getaddrinfo' : 'connect'), http);
      assert.ok(e instanceof TscCrocError && e.code === 'ERR_RELAY_UNREACHABLE');
      assert.match(e.message, /^cannot reach the relay at http:\/\/relay\.example:9009: /);
      assert.match(e.message, re, code);
      assert.doesNotMatch(e.message, NODE_CODE, code);
      assert.equal((e.cause as { code: string }).code, code, 'kept for --json and debug output');
    }
    assert.match(netError(err('ECONNREFUSED'), tcp).message, /^cannot reach the relay's TCP port relay\.example:9010: nothing accepts connections on that port/);
    assert.doesNotMatch(netReason(err('HPE_INVALID_CONSTANT'), tcp), /TCP port\?/);
  });

  test('the library: a proxy with no relay behind it (HTTP 502/503/504, not a relay\'s answer): unavailable right now, try again', T, async () => {
    for (const status of [502, 503, 504]) {
      const proxy = createHttpServer((_req, res) => {
        res.writeHead(status, { 'content-type': 'text/html' });
        res.end('<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>');
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      try {
        const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
        const e = await new RelayClient(url).join({ role: 'recipient', channel: '5126' }).catch((x: unknown) => x);
        assert.ok(e instanceof TscCrocError && e.code === 'ERR_RELAY_UNREACHABLE', String(e));
        assert.match(e.message, new RegExp(`^cannot reach the relay at ${url}: it is unavailable right now \\(HTTP ${status}, from the relay's server or a proxy in front of it\\): try again in a moment$`));
      } finally {
        await new Promise<void>((r) => proxy.close(() => r()));
      }
    }
  });

  test('the library: a JSON answer without a relay code is not taken for a relay', T, async () => {
    const json = createHttpServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"boom"}');
    });
    await new Promise<void>((r) => json.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(json.address() as { port: number }).port}`;
      const e = await new RelayClient(url).join({ role: 'recipient', channel: '5126' }).catch((x: unknown) => x);
      assert.ok(e instanceof TscCrocError && e.code === 'ERR_RELAY', String(e));
      assert.match(e.message, /answered \(HTTP 500\), but not as a tsc-croc relay/);
    } finally {
      await new Promise<void>((r) => json.close(() => r()));
    }
  });
});
