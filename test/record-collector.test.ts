/**
 * setRecordBufferCollector: the host's hook for freeing the record buffers node:crypto returns.
 * The library calls it only when registered, after every `everyBytes` of records, on both sides;
 * it never obtains V8's gc itself. setRecordBufferRelease: the host's hook given each large
 * record buffer once the socket or the file is done with it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { receive, send, setRecordBufferCollector, type RunningRelay } from '../src/index.js';
import { setRecordBufferRelease } from '../src/transfer/secure-channel.js';
import { startPeerRelay } from './helpers/relay.js';

let relay: RunningRelay;
let root: string;
before(async () => {
  relay = await startPeerRelay();
  root = await mkdtemp(join(tmpdir(), 'tsc-croc-collector-'));
});
after(async () => {
  setRecordBufferCollector(null);
  setRecordBufferRelease(null);
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

test('a release function that frees each buffer at once (detaches it) leaves the data intact', async () => {
  // as the CLI does: the memory moves into a message on a closed port, which drops it
  const { port1, port2 } = new MessageChannel();
  port1.close();
  port2.close();
  let released = 0;
  let bytes = 0;
  setRecordBufferRelease((b) => {
    released++;
    bytes += b.length;
    port1.postMessage(null, [b.buffer as ArrayBuffer]);
    assert.equal(b.length, 0); // detached: its memory is gone
  });
  try {
    // sender and recipient in this process: a buffer freed before its write completed would corrupt the file
    await transfer(8 * 1024 * 1024 + 12_345, 'c.bin');
  } finally {
    setRecordBufferRelease(null);
  }
  // 8 full ciphertexts from the sender; the recipient's pieces of 64 KiB and more
  assert.ok(released >= 9, `released ${released} buffers`);
  assert.ok(bytes >= 8 * 1024 * 1024 && bytes <= 2 * (8 * 1024 * 1024 + 12_345), `released ${bytes} bytes`);
});

test('with a release function, the bytes it freed count a quarter towards the collector', async () => {
  // the recipient's opened pieces are released by the file sink once written: a large file then
  // costs one collection per ~13-16 MiB instead of one per 4 (the sender's released ciphertexts count nothing)
  const { port1, port2 } = new MessageChannel();
  port1.close();
  port2.close();
  let calls = 0;
  setRecordBufferCollector(() => calls++, 4 * 1024 * 1024);
  setRecordBufferRelease((b) => port1.postMessage(null, [b.buffer as ArrayBuffer]));
  try {
    await transfer(32 * 1024 * 1024, 'd.bin');
  } finally {
    setRecordBufferRelease(null);
    setRecordBufferCollector(null);
  }
  // counted in full, the 32 MiB opened would be 8 calls
  assert.ok(calls >= 1 && calls <= 4, `collector called ${calls} times`);
});
