/** Bundled for the browser by bench/web-aead.bench.ts: seals and opens records with each AEAD of record-web.ts. */
import { RecordType, WebRecordOpener, WebRecordSealer, nobleAead, webCryptoAead, type AeadFactory } from '../src/core/record-web.js';

async function run(aead: AeadFactory, totalBytes: number, recordBytes: number): Promise<{ sealMBps: number; openMBps: number }> {
  const key = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const payload = globalThis.crypto.getRandomValues(new Uint8Array(Math.min(recordBytes, 65_536)));
  const record = new Uint8Array(recordBytes);
  for (let off = 0; off < recordBytes; off += payload.length) record.set(payload.subarray(0, recordBytes - off), off);
  const n = Math.ceil(totalBytes / recordBytes);
  const sealer = new WebRecordSealer(key, aead);
  const frames: Uint8Array[] = [];
  let t = performance.now();
  for (let i = 0; i < n; i++) frames.push(await sealer.seal(RecordType.DATA, record));
  const seal = performance.now() - t;
  const opener = new WebRecordOpener(key, aead);
  t = performance.now();
  for (const f of frames) await opener.push(f);
  const open = performance.now() - t;
  const mb = (n * recordBytes) / 1e6;
  return { sealMBps: mb / (seal / 1000), openMBps: mb / (open / 1000) };
}

(globalThis as unknown as { benchAead: unknown }).benchAead = async (totalBytes: number, recordBytes: number) => ({
  webcrypto: await run(webCryptoAead, totalBytes, recordBytes),
  noble: await run(nobleAead, totalBytes, recordBytes),
});
