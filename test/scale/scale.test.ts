/**
 * The heavy end-to-end cases, out of `npm test` (which stays within a few minutes on two loaded
 * cores): `npm run test:scale`. The same real relay, CLI processes and hash checks as
 * test/e2e.cli.test.ts, at the sizes users reach: 20,000 files, a 1 GiB file.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { runCli, sha256File, startCliRelay } from '../helpers/cli.js';

let relay: Awaited<ReturnType<typeof startCliRelay>>;
let dir: string;

before(async () => {
  relay = await startCliRelay();
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-scale-'));
});

after(async () => {
  const code = await relay.stop();
  assert.equal(code, 0, `relay exit code ${code}\n${relay.proc.stderr()}`);
  await rm(dir, { recursive: true, force: true });
});

async function transfer(what: string, out: string, ms: number): Promise<void> {
  const sender = runCli(['send', '--no-local', '--relay', relay.url, what]);
  const [, code] = await sender.waitFor(/Code is: (\S+)/, 60_000);
  const recipient = runCli(['receive', '--no-local', '--relay', relay.url, '--out', out, '--yes'], { env: { TSC_CROC_SECRET: code! } });
  const [rc, sc] = await Promise.all([recipient.exit(ms), sender.exit(ms)]);
  assert.equal(rc, 0, recipient.stderr());
  assert.equal(sc, 0, sender.stderr());
}

test('20,000 small files in 20 folders arrive identical', async () => {
  const root = join(dir, 'many');
  const out = join(dir, 'many-out');
  await mkdir(out);
  const hashes = new Map<string, string>();
  for (let d = 0; d < 20; d++) {
    await mkdir(join(root, `d${d}`), { recursive: true });
    await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const data = randomBytes(512);
        await writeFile(join(root, `d${d}`, `f${i}`), data);
        hashes.set(`d${d}/f${i}`, createHash('sha256').update(data).digest('hex'));
      }),
    );
  }
  await transfer(root, out, 300_000);
  let count = 0;
  for (let d = 0; d < 20; d++) {
    const names = await readdir(join(out, 'many', `d${d}`));
    assert.equal(names.length, 1000);
    for (const n of names) {
      assert.equal(await sha256File(join(out, 'many', `d${d}`, n)), hashes.get(`d${d}/${n}`));
      count++;
    }
  }
  assert.equal(count, 20_000);
});

test('a 1 GiB file arrives identical', async () => {
  const src = join(dir, 'big.bin');
  const out = join(dir, 'big-out');
  await mkdir(out);
  // 1 GiB of random bytes: a 16 MiB random block, each copy made distinct by its index
  const block = randomBytes(16 * 1024 * 1024);
  const h = createHash('sha256');
  const ws = createWriteStream(src);
  for (let i = 0; i < 64; i++) {
    const b = Buffer.from(block);
    b.writeUInt32BE(i, 0);
    h.update(b);
    if (!ws.write(b)) await once(ws, 'drain');
  }
  ws.end();
  await once(ws, 'finish');
  await transfer(src, out, 600_000);
  assert.equal(await sha256File(join(out, 'big.bin')), h.digest('hex'));
});
