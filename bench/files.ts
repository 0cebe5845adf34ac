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

/**
 * Write `count` files of `bytes` random bytes each under `dir`, `perFolder` to a subfolder
 * (d0000/f00000 ...), a few at a time. Returns the total bytes.
 */
export async function writeSmallFiles(dir: string, count: number, bytes: number, perFolder = 1000): Promise<number> {
  const { mkdir, writeFile } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  const pool = randomBytes(Math.max(bytes, 1) * 256);
  const BATCH = 64;
  for (let start = 0; start < count; start += BATCH) {
    const jobs: Promise<void>[] = [];
    for (let i = start; i < Math.min(count, start + BATCH); i++) {
      const sub = join(dir, `d${String(Math.floor(i / perFolder)).padStart(4, '0')}`);
      if (i % perFolder === 0) await mkdir(sub, { recursive: true });
      // distinct content per file: a window of the pool, its first bytes the index
      const body = Buffer.from(pool.subarray((i % 256) * bytes, (i % 256) * bytes + bytes));
      if (bytes >= 4) body.writeUInt32BE(i, 0);
      else if (bytes > 0) body[0] = i & 0xff;
      jobs.push(writeFile(join(sub, `f${String(i).padStart(6, '0')}`), body, { flag: 'wx', mode: 0o600 }));
    }
    await Promise.all(jobs);
  }
  return count * bytes;
}

/**
 * A digest of a folder tree: SHA-256 over the sorted lines "relative/path <sha256 of content>"
 * of its regular files (folders and modes not included), and how many files it holds.
 */
export async function manifestHash(dir: string): Promise<{ sha256: string; files: number }> {
  const { readdir, readFile } = await import('node:fs/promises');
  const lines: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) lines.push(`${r} ${createHash('sha256').update(await readFile(join(dir, r))).digest('hex')}`);
    }
  };
  await walk('');
  lines.sort();
  return { sha256: createHash('sha256').update(lines.join('\n')).digest('hex'), files: lines.length };
}
