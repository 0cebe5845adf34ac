/** The benchmark's test files: incompressible random content, and SHA-256 to check what arrived. */
import { createHash, randomFill } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const FILL_CHUNK = 16 * 1024 * 1024;

function fillRandom(buf: Buffer, size: number): Promise<void> {
  return new Promise((resolve, reject) => randomFill(buf, 0, size, (err) => (err ? reject(err) : resolve())));
}

/** Write `bytes` fresh random bytes to a new file at `path`, 16 MiB at a time, and fsync it. */
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
    // on disk before the runs start, so no run pays for writing back the source file
    await fh.sync();
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

/**
 * Write `bytes` to a scratch file in `dir` and delete it, untimed. On a VM whose host takes back
 * idle guest memory (e.g. Firecracker's free page reporting), the first write into page cache
 * that lands on such memory is several times dearer, most of all for large writes (large folios);
 * touching the memory just before a run gives every run the same starting point.
 */
export async function warmPageCache(dir: string, bytes: number): Promise<void> {
  const path = join(dir, `.warm-up-${process.pid}.tmp`);
  const fh = await open(path, 'wx', 0o600);
  try {
    const buf = Buffer.alloc(1024 * 1024, 0x5a);
    for (let done = 0; done < bytes; ) {
      const n = Math.min(buf.length, bytes - done);
      done += (await fh.write(buf, 0, n, done)).bytesWritten;
    }
  } finally {
    await fh.close();
    await unlink(path);
  }
}
