/**
 * The fleet run of bench/fleet.ts, small (`npm run test:scale`): one real redis-server, three
 * relay processes behind a real HAProxy, 30 concurrent library transfers in worker processes
 * (senders and recipients in different processes), every file hashed. Phase kill: one relay
 * process is killed with SIGKILL once every transfer moves data; its transfers reconnect through
 * the others and all 30 arrive (a sender whose stapler died after its last bytes went out may not
 * learn that they arrived: it says so). Phase redis: the redis-server is killed and restarted empty once
 * half the transfers are stapled; every transfer arrives or ends with the store's plain error.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { redisSkip } from '../helpers/redis.js';
import { HAPROXY } from '../helpers/haproxy.js';

const BENCH = fileURLToPath(new URL('../../bench/fleet.js', import.meta.url));
const skip =
  redisSkip() ??
  (spawnSync(HAPROXY, ['-v'], { stdio: 'ignore' }).status === 0 ? undefined : `${HAPROXY} is not installed (apt-get install haproxy)`) ??
  (spawnSync('redis-cli', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'redis-cli is not installed (apt-get install redis-tools)');

interface Report {
  phase: string;
  transfers: number;
  completedVerified: number;
  deliveredVerified: number;
  errors: Record<string, number>;
  reconnectedTransfers: number;
  splitAcrossProcesses: number;
  stapledOnKilled?: number;
}

test('30 transfers over 3 relay processes + HAProxy + Redis: kill -9 of one process, then a Redis restart', skip === undefined ? { timeout: 300_000 } : { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-fleet-scale-'));
  try {
    const json = join(dir, 'fleet.json');
    const child = spawn(process.execPath, [BENCH, '--transfers', '30', '--size-mib', '24', '--workers', '3', '--phases', 'kill,redis', '--json', json], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const t = setTimeout(() => child.kill('SIGINT'), 240_000);
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    clearTimeout(t);
    process.stdout.write(out.split('\n').filter((l) => !/NOTICE|WARNING/.test(l)).map((l) => `# ${l}`).join('\n') + '\n');
    assert.equal(code, 0, out.slice(-3000));
    const { reports } = JSON.parse(await readFile(json, 'utf8')) as { reports: Report[] };
    const [kill, redis] = reports;
    assert.ok(kill && redis, out.slice(-3000));

    // kill -9: every file arrives intact and both sides of every transfer end well; those stapled on
    // the killed process reconnected (a sender whose stapler died as the recipient's `received`
    // crossed it reads the recipient's proof on the relay instead: docs/protocol.md §7.1)
    assert.equal(kill.deliveredVerified, 30, JSON.stringify(kill.errors));
    assert.equal(kill.completedVerified, 30, JSON.stringify(kill.errors));
    assert.deepEqual(kill.errors, {});
    assert.ok(kill.stapledOnKilled! > 0, 'the killed process stapled some transfers');
    assert.ok(kill.reconnectedTransfers > 0, 'transfers stapled on the killed process reconnected through the others');
    assert.ok(kill.splitAcrossProcesses > 0);

    // Redis restarted empty: each transfer arrived, or its peers say the relay's store was unreachable
    // (or that the channel it needs is gone): never a hash mismatch, never a hang
    const clear =
      /^(recipient|sender) (ok|ERR_RELAY_UNREACHABLE: the relay cannot reach its channel store|ERR_CHANNEL_NOT_FOUND|ERR_TIMEOUT: timed out waiting for the other side|ERR_RELAY: the relay closed the TCP connection before stapling|ERR_CHANNEL_CLOSED|ERR_RELAY_UNREACHABLE: cannot reach the relay at \S+: it is unavailable right now)/;
    let ended = redis.completedVerified;
    for (const [why, n] of Object.entries(redis.errors)) {
      ended += n;
      assert.doesNotMatch(why, /hash mismatch|no outcome/, why);
      for (const side of why.split(' / ')) assert.match(side, clear, why);
    }
    assert.equal(ended, 30);
    assert.ok(redis.completedVerified > 0, 'the transfers already stapled when Redis went down finished');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
