/** The benchmark's test files: incompressible random content, and SHA-256 to check what arrived. */
import { createHash, randomFill } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

const FILL_CHUNK = 16 * 1024 * 1024;

function fillRandom(buf: Buffer, size: number): Promise<void> {
  return new Promise((resolve, reject) => randomFill(buf, 0, size, (err) => (err ? reject(err) : resolve())));
}

/** Write `bytes` fresh random bytes to a new file at `path`, 16 MiB at a time. */
export async function writeRandomFile(path: string, bytes: number): Promise<void> {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`bytes must be a non-negative integer, got ${bytes}`);
  const fh = await open(path, 'wx', 0o600);
  try {
    const buf = Buffer.allocUnsafe(Math.min(FILL_CHUNK, Math.max(bytes, 1)));
    let done = 0;
    while (done < bytes) {
      const n = Math.min(buf.length, bytes - done);
      await fillRandom(buf, n);
      let off = 0;
      while (off < n) off += (await fh.write(buf, off, n - off, done + off)).bytesWritten;
      done += n;
    }
  } finally {
    await fh.close();
  }
}

/** SHA-256 of a file's content, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
