/**
 * Two hosts on one machine: network namespaces joined by a veth pair, made by this test (it
 * needs root and iproute2; where they cannot be made, the test says so and skips). The sender
 * runs in one, the recipient in the other, no relay configured: the recipient finds the sender
 * by its multicast announcement across the link, and the file arrives intact. Each side names
 * its end of the link (--interface), so nothing multicasts anywhere else; confined to loopback,
 * the two never find each other.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, sha256File } from './helpers/cli.js';

const tag = `${process.pid % 10000}`;
const ns1 = `tcroc-a-${tag}`;
const ns2 = `tcroc-b-${tag}`;
let skip: string | false = false;
let dir = '';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe', timeout: 10_000 });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-netns-'));
  try {
    ip('netns', 'add', ns1);
    ip('netns', 'add', ns2);
    ip('link', 'add', `va${tag}`, 'type', 'veth', 'peer', 'name', `vb${tag}`);
    ip('link', 'set', `va${tag}`, 'netns', ns1);
    ip('link', 'set', `vb${tag}`, 'netns', ns2);
    // a private link that exists only between these two namespaces
    ip('-n', ns1, 'addr', 'add', '10.213.77.1/24', 'dev', `va${tag}`);
    ip('-n', ns2, 'addr', 'add', '10.213.77.2/24', 'dev', `vb${tag}`);
    for (const [ns, dev] of [[ns1, `va${tag}`], [ns2, `vb${tag}`]] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', dev, 'up');
    }
  } catch (e) {
    skip = `network namespaces cannot be made here (${(e as Error).message.split('\n')[0]}): needs root and iproute2`;
  }
});

after(async () => {
  for (const ns of [ns1, ns2]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // not made
    }
  }
  await rm(dir, { recursive: true, force: true });
});

test('sender and recipient in two network namespaces, no relay configured: found on the LAN, the file arrives intact', async (t) => {
  if (skip) return t.skip(skip);
  const src = join(dir, 'src');
  const out = join(dir, 'out');
  await mkdir(src);
  await mkdir(out);
  const file = join(src, 'across.bin');
  await writeFile(file, randomBytes(3 * 1024 * 1024));
  const sender = runCli(['send', '--interface', `va${tag}`, file], { wrap: ['ip', 'netns', 'exec', ns1] });
  const [, code] = await sender.waitFor(/Code is: (\S+)/);
  // confined to loopback, the recipient does not hear an announcement sent on the link
  const confined = runCli(['receive', '--wait', '0', '--interface', 'lo', '--out', out, '--yes'], { wrap: ['ip', 'netns', 'exec', ns2], env: { TSC_CROC_SECRET: code! } });
  assert.notEqual(await confined.exit(), 0);
  assert.match(confined.stderr(), /ERR_CHANNEL_NOT_FOUND/);
  const recipient = runCli(['receive', '--out', out, '--yes', '--json'], { wrap: ['ip', 'netns', 'exec', ns2], env: { TSC_CROC_SECRET: code!, TSC_CROC_INTERFACES: `vb${tag}` } });
  assert.equal(await recipient.exit(), 0, recipient.stderr());
  assert.equal(await sender.exit(), 0, sender.stderr());
  assert.match(recipient.stdout(), /"event":"route","via":"lan"/);
  assert.equal(await sha256File(join(out, 'across.bin')), await sha256File(file));
});
