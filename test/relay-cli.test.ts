/**
 * The relay as operators run it: the built CLI (the Dockerfile's command) configured through
 * TSC_CROC_RELAY_* variables; bad values are usage errors; SIGTERM drains: a transfer in flight
 * finishes, then the process exits 0.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildRelay } from '../src/relay/http.js';
import { prettyLogLine } from '../src/relay/log-pretty.js';
import { BoundedLogSink } from '../src/relay/log-sink.js';
import { Client, httpPost, seatOverHttp, spawnRelay, stapleSeats } from './relay-helpers.js';

const T = { timeout: 30_000 };
const LOCAL = { TSC_CROC_RELAY_HOST: '127.0.0.1', TSC_CROC_RELAY_PORT: '0', TSC_CROC_RELAY_TCP_PORT: '0' };

const DOCKERFILE = readFileSync(fileURLToPath(new URL('../../Dockerfile', import.meta.url)), 'utf8');

/** Run the Dockerfile's HEALTHCHECK command (a `node -e` script) with `env`; resolve with its exit code. */
function healthcheck(env: NodeJS.ProcessEnv): Promise<number> {
  const m = /HEALTHCHECK[^\n]*\\\n\s*CMD node -e "(.*)"\n/.exec(DOCKERFILE);
  assert.ok(m, 'the Dockerfile has a node -e HEALTHCHECK');
  return new Promise((resolve) => {
    execFile(process.execPath, ['-e', m[1]!], { env: { PATH: process.env.PATH, ...env }, timeout: 10_000 }, (err) =>
      resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1),
    );
  });
}

describe('Dockerfile', () => {
  test('multi-stage, non-root, both ports exposed, listens on 0.0.0.0, runs the tested command', () => {
    assert.equal(DOCKERFILE.match(/^FROM /gm)?.length, 2);
    assert.match(DOCKERFILE, /^USER node$/m);
    assert.match(DOCKERFILE, /^EXPOSE 9009\/tcp 9010\/tcp$/m);
    assert.match(DOCKERFILE, /TSC_CROC_RELAY_HOST=0\.0\.0\.0/);
    // (--max-semi-space-size=1: a flood must not leave V8's young generation grown, docs/self-hosting.md "Under attack")
    assert.match(DOCKERFILE, /^CMD \["node", "--max-semi-space-size=1", "dist\/src\/cli\/main\.js", "relay"\]$/m);
  });

  test('its HEALTHCHECK passes against a running relay and fails without one', { timeout: 30_000 }, async () => {
    const relay = await spawnRelay(['--quiet'], LOCAL);
    try {
      assert.equal(await healthcheck({ TSC_CROC_RELAY_PORT: String(relay.httpPort) }), 0);
    } finally {
      relay.child.kill('SIGTERM');
      assert.equal(await relay.exit(), 0);
    }
    assert.equal(await healthcheck({ TSC_CROC_RELAY_PORT: String(relay.httpPort) }), 1);
  });
});

describe('tsc-croc relay', () => {
  test('starts from environment variables; answers /health; /metrics on loopback', T, async () => {
    const relay = await spawnRelay(['--quiet'], LOCAL);
    try {
      const health = await fetch(`${relay.url}/health`);
      assert.deepEqual(await health.json(), { ok: true, version: 1 });
      const metrics = await fetch(`${relay.url}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /^tsc_croc_relay_channels_open 0$/m);
    } finally {
      relay.child.kill('SIGINT');
      assert.equal(await relay.exit(), 0);
    }
  });

  test('a bad variable is a usage error: exit code 2, naming the variable', T, async () => {
    await assert.rejects(spawnRelay([], { ...LOCAL, TSC_CROC_RELAY_MAX_CHANNELS: 'lots' }), /exit 2\)[\s\S]*TSC_CROC_RELAY_MAX_CHANNELS/);
  });

  test('the relay password from the environment is required and never logged', T, async () => {
    const password = 'env-password-4f1c2a';
    const relay = await spawnRelay([], { ...LOCAL, TSC_CROC_RELAY_PASSWORD: password });
    try {
      assert.equal((await httpPost(`${relay.url}/join`, { role: 'sender' })).status, 401);
      assert.equal((await httpPost(`${relay.url}/join`, { role: 'sender', password })).status, 200);
    } finally {
      relay.child.kill('SIGTERM');
      assert.equal(await relay.exit(), 0);
    }
    assert.match(relay.stdout(), /ERR_UNAUTHORIZED/);
    assert.ok(!relay.stdout().includes(password) && !relay.stderr().includes(password));
  });

  test('SIGTERM: joins are refused, the stapled transfer in flight finishes, then the relay exits 0', T, async () => {
    const relay = await spawnRelay(['--shutdown-grace', '20'], LOCAL);
    try {
      const seats = await seatOverHttp(relay.url);
      const a = await Client.connect(seats.tcpPort, { allowHalfOpen: true });
      a.hello(seats.channel, seats.sender);
      const b = await Client.connect(seats.tcpPort, { allowHalfOpen: true });
      b.hello(seats.channel, seats.recipient);
      assert.deepEqual(await a.reply(), { v: 1, type: 'stapled' });
      assert.deepEqual(await b.reply(), { v: 1, type: 'stapled' });

      const first = Buffer.alloc(256 * 1024, 1);
      a.socket.write(first);
      await b.until(() => b.data.length === first.length, 'the first half');

      relay.child.kill('SIGTERM');
      await relay.waitFor(/draining/);
      await relay.waitFor(/SIGTERM: draining/);
      const refused = await httpPost<{ code: string }>(`${relay.url}/join`, { role: 'sender' });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.code, 'ERR_SHUTTING_DOWN');

      const second = Buffer.alloc(256 * 1024, 2);
      a.socket.end(second);
      await b.until(() => b.ended, 'the end of the stream');
      assert.deepEqual(b.data, Buffer.concat([first, second]));
      b.socket.end(Buffer.from('thanks'));
      await a.until(() => a.ended, 'the answer');
      assert.equal(a.data.toString(), 'thanks');
      assert.equal(await relay.exit(), 0);
      assert.match(relay.stdout(), /"msg":"drained"/);
    } finally {
      relay.child.kill('SIGKILL');
    }
  });

  test('a second signal stops at once, even with a pair still stapled', T, async () => {
    const relay = await spawnRelay(['--shutdown-grace', '600', '--quiet'], LOCAL);
    const seats = await seatOverHttp(relay.url);
    const { a, b } = await stapleSeats(seats); // both told 'stapled'
    relay.child.kill('SIGTERM');
    await relay.waitFor(/draining/);
    relay.child.kill('SIGTERM');
    assert.equal(await relay.exit(), 0);
    await a.until(() => a.closed, 'a to be dropped');
    await b.until(() => b.closed, 'b to be dropped');
  });
});

describe('relay logs: --log-format json|pretty', () => {
  test('a pretty line: time of day, level, message, key=value; control and bidi characters escaped; secrets stay redacted', () => {
    const time = Date.UTC(2026, 10, 29, 9, 41, 7);
    assert.equal(
      prettyLogLine(`${JSON.stringify({ level: 30, time, pid: 7, hostname: 'h', msg: 'stapled', channel: '4173', bytes: 1200, clean: true })}\n`, { utc: true }),
      '09:41:07 INFO  stapled channel=4173 bytes=1200 clean=true\n',
    );
    assert.equal(
      prettyLogLine(JSON.stringify({ level: 50, time, msg: 'request failed', address: '::1', err: { type: 'TypeError', message: 'boom\nnext', stack: 'TypeError: boom\n    at x' } }), { utc: true }),
      '09:41:07 ERROR request failed address=::1 err="TypeError: boom\\nnext"\n',
    );
    // whatever a field holds, nothing raw reaches the terminal: ESC, C1, bidi overrides, newlines
    const hostile = prettyLogLine(JSON.stringify({ level: 40, time, msg: 'x\x1b[2Jy', 'k\u202e': 'a\x1b]0;t\x07b\u009b', x: '[redacted]', nested: { a: '\u2066' } }), { utc: true });
    assert.equal(hostile, '09:41:07 WARN  x\\u001b[2Jy "k\\u202e"="a\\u001b]0;t\\u0007b\\u009b" x=[redacted] nested={"a":"\\u2066"}\n');
    assert.doesNotMatch(hostile.slice(0, -1), /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    // not JSON: shown escaped, as it is
    assert.equal(prettyLogLine('oops\x1b[31m\n'), 'oops\\u001b[31m\n');
    // colour: level and time only when asked
    assert.match(prettyLogLine(JSON.stringify({ level: 30, time, msg: 'm' }), { colour: true, utc: true }), /^\x1b\[2m09:41:07\x1b\[0m \x1b\[32mINFO \x1b\[0m m\n$/);
  });

  test('the pretty sink keeps the bound and counts what it drops, into /metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsc-croc-log-'));
    try {
      const fd = openSync(join(dir, 'log'), 'w');
      // room for one formatted line, not two: the bound applies to the formatted text
      const sink = new BoundedLogSink(fd, 60, (line) => prettyLogLine(line, { utc: true }));
      const line = `${JSON.stringify({ level: 30, time: 0, msg: 'a line of some length', n: 1 })}\n`;
      assert.equal(sink.write(line), true);
      assert.equal(sink.write(line), false);
      assert.equal(sink.dropped, 1);
      await new Promise<void>((resolve) => {
        const poll = () => (sink.pendingBytes === 0 ? resolve() : setImmediate(poll));
        poll();
      });
      closeSync(fd);
      assert.equal(readFileSync(join(dir, 'log'), 'utf8'), '00:00:00 INFO  a line of some length n=1\n');

      // given to the relay as its stream, the sink is its own: drops show in /metrics
      const given = new BoundedLogSink(openSync('/dev/null', 'w'), 1, (l) => prettyLogLine(l));
      const relay = buildRelay({ logger: { level: 'info', stream: given } as never, metrics: 'public' });
      try {
        relay.app.log.info('one line too many');
        const metrics = await relay.app.inject({ method: 'GET', url: '/metrics' });
        assert.match(metrics.body, /^tsc_croc_relay_log_lines_dropped_total [1-9]\d*$/m, metrics.body.slice(0, 2000));
      } finally {
        await relay.close();
        closeSync(given.fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('pretty through the CLI (flag or TSC_CROC_RELAY_LOG_FORMAT): one short line per event, never the password; a bad value is exit 2', T, async () => {
    const relay = await spawnRelay([], { ...LOCAL, TSC_CROC_RELAY_LOG_FORMAT: 'pretty' });
    try {
      const seats = await seatOverHttp(relay.url);
      const { a, b } = await stapleSeats(seats); // both told 'stapled'
      a.socket.end();
      b.socket.end();
      await a.until(() => a.closed, 'a to close');
    } finally {
      relay.child.kill('SIGTERM');
      assert.equal(await relay.exit(), 0);
    }
    const out = relay.stdout();
    assert.match(out, /^\d\d:\d\d:\d\d INFO  relay listening httpPort=\d+ tcpPort=\d+ host=127\.0\.0\.1$/m);
    assert.match(out, /^\d\d:\d\d:\d\d INFO  stapled component=stapler channel=\d+ senderAddress=127\.0\.0\.1 recipientAddress=127\.0\.0\.1$/m);
    assert.doesNotMatch(out, /^\{/m, 'no JSON line');

    const password = 'env-password-7c3e9b';
    const locked = await spawnRelay(['--log-format', 'pretty'], { ...LOCAL, TSC_CROC_RELAY_PASSWORD: password });
    try {
      assert.equal((await httpPost(`${locked.url}/join`, { role: 'sender' })).status, 401);
      assert.equal((await httpPost(`${locked.url}/join`, { role: 'sender', password })).status, 200);
    } finally {
      locked.child.kill('SIGTERM');
      assert.equal(await locked.exit(), 0);
    }
    assert.match(locked.stdout(), /INFO  relay listening/);
    assert.ok(!locked.stdout().includes(password) && !locked.stderr().includes(password));

    await assert.rejects(spawnRelay(['--log-format', 'fancy'], LOCAL), /exit 2\)[\s\S]*--log-format \(env TSC_CROC_RELAY_LOG_FORMAT\) must be json or pretty/);
    // JSON when asked, even where pretty would be the default
    const json = await spawnRelay(['--log-format', 'json', '--quiet'], LOCAL);
    json.child.kill('SIGTERM');
    assert.equal(await json.exit(), 0);
  });

  test('by default: pretty on a terminal, JSON into a pipe', T, async (t) => {
    const piped = await spawnRelay([], LOCAL);
    piped.child.kill('SIGTERM');
    assert.equal(await piped.exit(), 0);
    assert.match(piped.stdout(), /^\{"level":30,"time":\d+,.*"msg":"relay listening"/m);
    try {
      execFileSync('script', ['--version'], { stdio: 'pipe' });
    } catch {
      return t.skip('no `script` (util-linux) here to give the relay a terminal');
    }
    const env: NodeJS.ProcessEnv = { ...process.env, ...LOCAL, TERM: 'xterm', NO_COLOR: '1' };
    delete env.FORCE_COLOR;
    const CLI = fileURLToPath(new URL('../tsc-croc.cjs', import.meta.url));
    const child = spawn('script', ['-qefc', `'${process.execPath}' '${CLI}' relay`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    t.after(() => clearTimeout(timer));
    const seen = new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        screen += d;
        if (/INFO {2}relay listening/.test(screen)) resolve();
      });
      child.once('exit', () => reject(new Error(`exited: ${JSON.stringify(screen)}`)));
    });
    await seen;
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin.write('\x03'); // Ctrl-C on its terminal: SIGINT, the relay drains and stops
    await exited;
    assert.match(screen, /^\d\d:\d\d:\d\d INFO  relay listening httpPort=\d+ tcpPort=\d+ host=127\.0\.0\.1\r?$/m);
    assert.doesNotMatch(screen, /"level":/);
  });
});
