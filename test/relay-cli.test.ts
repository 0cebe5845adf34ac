/**
 * The relay as operators run it: the built CLI (the Dockerfile's command) configured through
 * TSC_CROC_RELAY_* variables; bad values are usage errors; SIGTERM drains: a transfer in flight
 * finishes, then the process exits 0.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client, httpPost, seatOverHttp, spawnRelay } from './relay-helpers.js';

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
    const a = await Client.connect(seats.tcpPort);
    a.hello(seats.channel, seats.sender);
    const b = await Client.connect(seats.tcpPort);
    b.hello(seats.channel, seats.recipient);
    assert.deepEqual(await a.reply(), { v: 1, type: 'stapled' });
    relay.child.kill('SIGTERM');
    await relay.waitFor(/draining/);
    relay.child.kill('SIGTERM');
    assert.equal(await relay.exit(), 0);
    await a.until(() => a.closed, 'a to be dropped');
    await b.until(() => b.closed, 'b to be dropped');
  });
});
