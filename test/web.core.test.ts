/**
 * src/core in a browser: the browser bundle pulls nothing from node, and the browser halves of the
 * seam (platform.browser.ts, record-web.ts) agree byte for byte with the node halves the CLI uses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { TscCrocError } from '../src/core/errors.js';
import * as nodePlatform from '../src/core/platform.js';
import * as browserPlatform from '../src/core/platform.browser.js';
import { RecordOpener, RecordSealer, RecordType, recordPayload } from '../src/core/record.js';
import { WebRecordOpener, WebRecordSealer, nobleAead, webCryptoAead, type AeadFactory } from '../src/core/record-web.js';
import { derivePasswordScalar } from '../src/core/password.js';
import { generateSecret, randomBelow } from '../src/core/code-phrase.js';

const root = join(import.meta.dirname, '..', '..');
const code = (c: string) => (e: unknown) => e instanceof TscCrocError && e.code === c;

interface BundleScript {
  webBuildOptions(entry: string, outfile: string): esbuild.BuildOptions;
}
const loadScript = async (): Promise<BundleScript> => (await import(pathToFileURL(join(root, 'scripts', 'bundle-web.mjs')).href)) as BundleScript;

for (const entry of ['core.ts', 'main.ts']) {
  test(`web bundle: src/web/${entry} bundles for the browser with no node built-in and no Buffer`, async () => {
    const { webBuildOptions } = await loadScript();
    const result = await esbuild.build({ ...webBuildOptions(join(root, 'src', 'web', entry), 'out.js'), write: false, minify: false });
    const inputs = Object.keys(result.metafile!.inputs);
    assert.ok(inputs.some((i) => i.endsWith('src/core/platform.browser.ts')), 'the browser platform is in');
    assert.ok(!inputs.some((i) => i.endsWith('src/core/platform.ts')), 'the node platform is not');
    assert.deepEqual(inputs.filter((i) => i.startsWith('node:') || i.includes('(disabled)')), []);
    const js = result.outputFiles![0]!.text;
    assert.doesNotMatch(js, /\bBuffer\b/, 'no Buffer in the browser bundle');
    assert.doesNotMatch(js, /\brequire\(/, 'no require() in the browser bundle');
  });
}

test('web bundle: a node built-in anywhere in the graph fails the build', async () => {
  const { webBuildOptions } = await loadScript();
  await assert.rejects(
    esbuild.build({ ...webBuildOptions(join(root, 'src', 'core', 'record.ts'), 'out.js'), write: false, logLevel: 'silent' }),
    /node:crypto imported by .*record\.ts: the browser bundle may not use node built-ins/,
  );
});

test('crypto seam: scrypt and SHA-256 give the same bytes on both sides', async () => {
  const pw = randomBytes(20);
  const salt = randomBytes(16);
  const params = { N: 2 ** 10, r: 8, p: 1, dkLen: 64 };
  assert.deepEqual(await browserPlatform.scryptBytes(pw, salt, params), new Uint8Array(await nodePlatform.scryptBytes(pw, salt, params)));
  const data = randomBytes(3 * 65_536 + 7);
  const [a, b] = [nodePlatform.createSha256(), browserPlatform.createSha256()];
  a.update(data.subarray(0, 1000));
  b.update(data.subarray(0, 1000));
  const [a2, b2] = [a.copy(), b.copy()];
  a.update(data.subarray(1000));
  b.update(data.subarray(1000));
  assert.deepEqual(b.digest(), new Uint8Array(a.digest()));
  assert.deepEqual(b2.digest(), new Uint8Array(a2.digest()));
  // the password scalar of a known code (node side), as a regression anchor for both
  const w = await derivePasswordScalar('ginger-habit-orbit', { curve: 'ed25519', channel: '512' });
  assert.equal(typeof w, 'bigint');
});

test('code phrases: randomBelow is in range and generateSecret draws from it', () => {
  for (let i = 0; i < 1000; i++) {
    const n = randomBelow(2048);
    assert.ok(Number.isInteger(n) && n >= 0 && n < 2048);
  }
  assert.match(generateSecret(), /^[a-z]+-[a-z]+-[a-z]+$/);
  assert.throws(() => randomBelow(0), RangeError);
});

const AEADS: [string, AeadFactory][] = [
  ['webcrypto', webCryptoAead],
  ['noble', nobleAead],
];

for (const [name, aead] of AEADS) {
  test(`record-web (${name}): frames interoperate with record.ts both ways, in any chunking`, async () => {
    const key = randomBytes(32);
    const payloads = [randomBytes(1), randomBytes(70_000), Buffer.alloc(0), randomBytes(1024 * 1024)];
    // node seals, web opens
    const s = new RecordSealer(key);
    const wire = Buffer.concat([...payloads.map((p) => Buffer.concat(s.seal(RecordType.DATA, p))), Buffer.concat(s.seal(RecordType.END))]);
    for (const step of [7, 65_536, wire.length]) {
      const o = new WebRecordOpener(key, aead);
      const got: Uint8Array[] = [];
      for (let off = 0; off < wire.length; off += step)
        for (const r of await o.push(wire.subarray(off, off + step))) if (r.type === RecordType.DATA) got.push(r.payload);
      o.finish();
      assert.deepEqual(got.map((g) => Buffer.from(g)), payloads);
    }
    // web seals, node opens
    const ws = new WebRecordSealer(key, aead);
    const frames: Uint8Array[] = [];
    for (const p of payloads) frames.push(await ws.seal(RecordType.DATA, p));
    frames.push(await ws.seal(RecordType.MESSAGE, Buffer.from('{"type":"done"}')));
    frames.push(await ws.seal(RecordType.END));
    const o = new RecordOpener(key);
    const recs = o.push(Buffer.concat(frames));
    o.finish();
    assert.deepEqual(recs.slice(0, 4).map((r) => recordPayload(r)), payloads);
    assert.equal(recordPayload(recs[4]!).toString(), '{"type":"done"}');
  });

  test(`record-web (${name}): tampering, replay, reorder, oversize, truncation and data after END are refused`, async () => {
    const key = randomBytes(32);
    const s = new RecordSealer(key);
    const f0 = Buffer.concat(s.seal(RecordType.DATA, randomBytes(100)));
    const f1 = Buffer.concat(s.seal(RecordType.END));
    const bad = Buffer.from(f0);
    bad[20]! ^= 1;
    await assert.rejects(new WebRecordOpener(key, aead).push(bad), code('ERR_RECORD_AUTH'));
    await assert.rejects(new WebRecordOpener(randomBytes(32), aead).push(f0), code('ERR_RECORD_AUTH'));
    await assert.rejects(new WebRecordOpener(key, aead).push(f1), code('ERR_RECORD_REORDER'));
    await assert.rejects(new WebRecordOpener(key, aead).push(Buffer.concat([f0, f0])), code('ERR_RECORD_REPLAY'));
    await assert.rejects(new WebRecordOpener(key, aead).push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0])), code('ERR_FRAME_TOO_LARGE'));
    const cut = new WebRecordOpener(key, aead);
    await cut.push(f0);
    assert.throws(() => cut.finish(), code('ERR_RECORD_TRUNCATED'));
    await assert.rejects(new WebRecordOpener(key, aead).push(Buffer.concat([f0, f1, Buffer.from([0])])), code('ERR_RECORD_AFTER_END'));
    const ws = new WebRecordSealer(key, aead);
    await ws.seal(RecordType.END);
    await assert.rejects(ws.seal(RecordType.DATA), code('ERR_RECORD_AFTER_END'));
  });
}
