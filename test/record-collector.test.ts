/**
 * setRecordBufferCollector: the host's hook for freeing the record buffers node:crypto returns.
 * The library calls it only when registered, after every `everyBytes` of records, on both sides;
 * it never obtains V8's gc itself.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { receive, send, setRecordBufferCollector, type RunningRelay } from '../src/index.js';
import { startPeerRelay } from './helpers/relay.js';

let relay: RunningRelay;
let root: string;
before(async () => {
  relay = await startPeerRelay();
  root = await mkdtemp(join(tmpdir(), 'tsc-croc-collector-'));
});
after(async () => {
  setRecordBufferCollector(null);
  await relay.close();
  await rm(root, { recursive: true, force: true });
});

async function transfer(bytes: number, name: string): Promise<void> {
  const file = join(root, name);
  const data = randomBytes(bytes);
  await writeFile(file, data);
  let gotCode!: (c: string) => void;
  const code = new Promise<string>((r) => (gotCode = r));
  const sending = send({ relay: relay.httpUrl, lan: 'off', files: [file], onEvent: (e) => e.type === 'code' && gotCode(e.code) });
  const out = join(root, `${name}.out`);
  await mkdir(out);
  await Promise.all([sending, code.then((c) => receive({ relay: relay.httpUrl, lan: 'off', code: c, outDir: out, accept: () => true }))]);
  assert.ok((await readFile(join(out, name))).equals(data));
}

test('a registered collector is called after every everyBytes of records, sealed and opened', async () => {
  let calls = 0;
  setRecordBufferCollector(() => calls++, 1024 * 1024);
  await transfer(8 * 1024 * 1024, 'a.bin');
  // 8 MiB sealed by the sender and 8 MiB opened by the recipient (same process): at least 14 calls
  assert.ok(calls >= 14, `collector called ${calls} times`);
  assert.ok(calls <= 18, `collector called ${calls} times`);
});

test('without a collector (or after removing it), nothing is called', async () => {
  let calls = 0;
  setRecordBufferCollector(() => calls++, 1024 * 1024);
  setRecordBufferCollector(null);
  await transfer(4 * 1024 * 1024, 'b.bin');
  assert.equal(calls, 0);
});

test('everyBytes must be a positive integer', () => {
  assert.throws(() => setRecordBufferCollector(() => undefined, 0), RangeError);
  assert.throws(() => setRecordBufferCollector(() => undefined, 1.5), RangeError);
});
