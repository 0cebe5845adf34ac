/** A legitimate transfer through a relay (library send/receive, lan off), checked by hash: the proof an attack test needs. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { receive, send } from '../../src/index.js';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Send `bytes` random bytes from 127.0.0.1 through `relay` and check that the received file has the same hash. */
export async function legitTransfer(relay: string, bytes = 256 * 1024): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-legit-'));
  try {
    const data = randomBytes(bytes);
    const file = join(dir, 'legit.bin');
    await writeFile(file, data);
    const out = join(dir, 'out');
    await mkdir(out);
    let gotCode!: (c: string) => void;
    const code = new Promise<string>((res) => (gotCode = res));
    const sending = send({ relay, lan: 'off', files: [file], onEvent: (e) => e.type === 'code' && gotCode(e.code) });
    sending.catch(() => gotCode(''));
    const c = await code;
    assert.notEqual(c, '', 'the sender did not get a code');
    const [received] = await Promise.all([receive({ relay, lan: 'off', code: c, outDir: out, accept: () => true }), sending]);
    assert.ok(received);
    assert.equal(sha256(await readFile(join(out, 'legit.bin'))), sha256(data));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
