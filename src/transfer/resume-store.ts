/**
 * What an interrupted receive leaves behind so that the next run continues it (docs/protocol.md
 * §6.4), and reading it back. Three kinds of hidden files, all named `.tsc-croc-<id>.<kind>`
 * where id is derived from the name they belong to, so a rerun finds them again:
 *
 * - `<name>.partial` beside the final name: the bytes received so far;
 * - `<name>.chunks` beside it: a magic line, then the 32-byte hash of every whole 1 MiB chunk
 *   of the partial that was on disk (fdatasync'ed) before the hash was written, so a resumed
 *   run continues the digest without reading those bytes again;
 * - `<top-level name>.journal` in the output folder, one per offered top-level name: JSON lines,
 *   `{"open":path}` when a large file starts and `{"done":path,...}` when a file is verified,
 *   so a rerun knows which partials to look for and which files it already wrote.
 *
 * Everything read back is checked as if it were hostile: a sender can never create these names
 * (src/core/path.ts reserves the prefix), but the disk may have been touched meanwhile.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CHUNK_HASH_BYTES, CHUNK_SIZE, ChunkHasher, digestOf } from '../core/chunk-digest.js';
import type { HaveEntry } from '../core/messages.js';
import { RESERVED_PREFIX, checkRelativePath } from '../core/path.js';

export type StateKind = 'partial' | 'chunks' | 'journal';

/** Files smaller than this are not worth resuming: they are sent again whole, and not journaled as open. */
export const RESUME_MIN_BYTES = CHUNK_SIZE;
/** The largest journal read back (about 2.5 million entries). */
const MAX_JOURNAL_BYTES = 256 * 1024 * 1024;
const CHUNKS_MAGIC = Buffer.from('tsc-croc chunks v1\n', 'utf8');
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/** `.tsc-croc-<16 hex digits>.<kind>`: stable for a name, short whatever the name's length. */
export function stateName(name: string, kind: StateKind): string {
  const id = createHash('sha256').update(`tsc-croc/v1/state\0${name}`, 'utf8').digest('hex').slice(0, 16);
  return `${RESERVED_PREFIX}${id}.${kind}`;
}

/**
 * Identifies an offer (its top-level names and totals): a journal is trusted to skip the
 * question about an existing name only for the same offer it was written for.
 */
export function offerId(o: { names: readonly string[]; totalFiles: number; totalDirs: number; totalBytes: number }): string {
  return createHash('sha256').update(JSON.stringify([o.names, o.totalFiles, o.totalDirs, o.totalBytes])).digest('hex').slice(0, 32);
}

const UID = typeof process.getuid === 'function' ? process.getuid() : null;

/** Our own plain file: not a link of any kind, owned by this user (in a shared folder, another user's file is not our state). */
function ours(st: { isFile(): boolean; nlink: number; uid: number }): boolean {
  return st.isFile() && st.nlink === 1 && (UID === null || st.uid === UID);
}

/** What a rerun holds of one file. */
export type Held =
  | { complete: true; size: number; mtime: number; digest: string }
  | { complete: false; hashes: Uint8Array[]; offset: number };

interface JournalState {
  /** This transfer created the top-level name (it did not exist before). */
  created: boolean;
  /** The offer it was written for (offerId). */
  offer: string;
  open: Set<string>;
  done: Map<string, { size: number; mtime: number; digest: string }>;
}

/** An open file handle for appending journal lines, one write at a time. */
export class Journal {
  #handle: FileHandle;
  #chain: Promise<void> = Promise.resolve();
  readonly path: string;

  private constructor(handle: FileHandle, path: string) {
    this.#handle = handle;
    this.path = path;
  }

  /**
   * Open (or create) the journal of a top-level name. A new journal starts with whether this
   * transfer created that name: only then may a later run write into it without asking again.
   */
  static async open(outDir: string, root: string, created: boolean, offer: string): Promise<Journal> {
    const path = join(outDir, stateName(root, 'journal'));
    const handle = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | NOFOLLOW, 0o600);
    const j = new Journal(handle, path);
    // an existing journal now serves this offer (the user agreed to write into the name): from
    // here on a rerun of this offer resumes without asking; whether we created the name stays
    if ((await handle.stat()).size === 0) await j.#append({ created, offer });
    else await j.#append({ offer });
    return j;
  }

  #append(o: object): Promise<void> {
    const line = `${JSON.stringify(o)}\n`;
    this.#chain = this.#chain.then(async () => {
      await this.#handle.write(line);
    });
    return this.#chain;
  }

  opened(path: string): Promise<void> {
    return this.#append({ open: path });
  }

  done(path: string, size: number, mtime: number, digest: string): Promise<void> {
    return this.#append({ done: path, size, mtime, digest });
  }

  async close(): Promise<void> {
    await this.#chain.catch(() => undefined);
    await this.#handle.close().catch(() => undefined);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

function validEntryPath(p: unknown, root: string): p is string {
  if (typeof p !== 'string') return false;
  try {
    return checkRelativePath(p)[0] === root;
  } catch {
    return false;
  }
}

/** The journal of a top-level name, or null if there is none (or it is not a plain file of ours). */
export async function readJournal(outDir: string, root: string): Promise<JournalState | null> {
  const path = join(outDir, stateName(root, 'journal'));
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | NOFOLLOW);
  } catch {
    return null;
  }
  let text: string;
  try {
    const st = await fh.stat();
    if (!ours(st) || st.size > MAX_JOURNAL_BYTES) return null;
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  const state: JournalState = { created: false, offer: '', open: new Set(), done: new Map() };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line cut short by a crash
    }
    if (typeof o !== 'object' || o === null) continue;
    if (typeof o.created === 'boolean' && typeof o.offer === 'string' && Object.keys(o).length === 2) {
      if (state.offer === '') state.created = o.created; // only the first line says who created the name
      state.offer = o.offer;
    } else if (typeof o.offer === 'string' && Object.keys(o).length === 1 && state.offer !== '') state.offer = o.offer;
    else if (validEntryPath(o.open, root)) {
      state.open.add(o.open);
      state.done.delete(o.open);
    } else if (
      validEntryPath(o.done, root) &&
      Number.isSafeInteger(o.size) && (o.size as number) >= 0 &&
      Number.isSafeInteger(o.mtime) && (o.mtime as number) >= 0 &&
      typeof o.digest === 'string' && HEX64.test(o.digest)
    ) {
      state.open.delete(o.done);
      state.done.set(o.done, { size: o.size as number, mtime: o.mtime as number, digest: o.digest });
    }
  }
  return state;
}

/** A plain file of ours (not a link of any kind), or null. */
async function plainFile(path: string) {
  try {
    const st = await lstat(path);
    return ours(st) ? st : null;
  } catch {
    return null;
  }
}

/**
 * A file we published (the final name of a verified file), or null. A run killed between
 * link(partial, final) and unlink(partial) leaves two names for it: the partial one goes now.
 */
async function publishedFile(path: string) {
  try {
    const st = await lstat(path);
    if (st.isFile() && st.nlink === 2) {
      const slash = path.lastIndexOf('/');
      const partial = join(path.slice(0, slash), stateName(path.slice(slash + 1), 'partial'));
      const p = await lstat(partial).catch(() => null);
      if (p !== null && p.ino === st.ino && p.dev === st.dev) {
        await unlink(partial);
        return plainFile(path);
      }
    }
    return ours(st) ? st : null;
  } catch {
    return null;
  }
}

/**
 * The whole chunks of a partial file we can vouch for: the hashes in its sidecar (written only
 * after the data was on disk), then whole chunks beyond them hashed by reading them once (a run
 * killed between checkpoints). Returns null when nothing is usable.
 */
export async function loadPartial(dir: string, name: string): Promise<{ hashes: Uint8Array[]; offset: number } | null> {
  const partial = await plainFile(join(dir, stateName(name, 'partial')));
  if (partial === null) return null;
  const whole = Math.floor(partial.size / CHUNK_SIZE);
  if (whole === 0) return null;
  const hashes: Uint8Array[] = [];
  const chunksPath = join(dir, stateName(name, 'chunks'));
  if ((await plainFile(chunksPath)) !== null) {
    const raw = await readFile(chunksPath).catch(() => null);
    if (raw !== null && raw.subarray(0, CHUNKS_MAGIC.length).equals(CHUNKS_MAGIC)) {
      const body = raw.subarray(CHUNKS_MAGIC.length);
      const n = Math.min(whole, Math.floor(body.length / CHUNK_HASH_BYTES));
      for (let i = 0; i < n; i++) hashes.push(Uint8Array.from(body.subarray(i * CHUNK_HASH_BYTES, (i + 1) * CHUNK_HASH_BYTES)));
    }
  }
  if (hashes.length < whole) {
    const fh = await open(join(dir, stateName(name, 'partial')), constants.O_RDONLY | NOFOLLOW).catch(() => null);
    if (fh === null) return hashes.length > 0 ? { hashes, offset: hashes.length * CHUNK_SIZE } : null;
    try {
      const hasher = new ChunkHasher(hashes);
      const buf = Buffer.allocUnsafe(CHUNK_SIZE);
      while (hasher.hashes.length < whole) {
        const at = hasher.length;
        let got = 0;
        while (got < CHUNK_SIZE) {
          const { bytesRead } = await fh.read(buf, got, CHUNK_SIZE - got, at + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got < CHUNK_SIZE) break; // shorter than it said: keep what is whole
        hasher.update(buf);
      }
      hashes.splice(0, hashes.length, ...hasher.hashes);
    } finally {
      await fh.close();
    }
  }
  return hashes.length > 0 ? { hashes, offset: hashes.length * CHUNK_SIZE } : null;
}

/** The sidecar of a partial: created at a checkpoint, appended to after each. */
export class ChunkLog {
  readonly #path: string;
  #handle: FileHandle | null = null;
  /** How many hashes are in the file. */
  #written = 0;

  constructor(dir: string, name: string) {
    this.#path = join(dir, stateName(name, 'chunks'));
  }

  /** Start over with exactly `hashes` (a resumed file, or none for a fresh one). */
  async reset(hashes: readonly Uint8Array[]): Promise<void> {
    await this.close();
    await unlink(this.#path).catch(() => undefined);
    this.#written = 0;
    if (hashes.length > 0) await this.append(hashes);
  }

  /** Add the hashes past those already written; call only once their data is on disk. */
  async append(hashes: readonly Uint8Array[]): Promise<void> {
    if (hashes.length <= this.#written) return;
    if (this.#handle === null) {
      this.#handle = await open(this.#path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o600);
      await this.#handle.write(CHUNKS_MAGIC);
    }
    const add = Buffer.concat(hashes.slice(this.#written));
    await this.#handle.write(add);
    this.#written = hashes.length;
  }

  async close(): Promise<void> {
    const h = this.#handle;
    this.#handle = null;
    await h?.close().catch(() => undefined);
  }

  async remove(): Promise<void> {
    await this.close();
    await unlink(this.#path).catch(() => undefined);
  }
}

/**
 * For the offered top-level names, what earlier runs into `outDir` left: the `have` entries for
 * the sender, what we hold of each path, and the names that an interrupted transfer created
 * (written into without asking again; a name that existed before is asked about again). Costs one lstat per file written before, and reads only
 * partial chunks that were not checkpointed.
 */
export async function findHeld(
  outDir: string,
  offer: { names: readonly string[]; totalFiles: number; totalDirs: number; totalBytes: number },
): Promise<{ have: HaveEntry[]; held: Map<string, Held>; resumable: Set<string> }> {
  const roots = offer.names;
  const maxEntries = offer.totalFiles;
  const id = offerId(offer);
  const have: HaveEntry[] = [];
  const held = new Map<string, Held>();
  const resumable = new Set<string>();
  for (const root of roots) {
    const journal = await readJournal(outDir, root);
    if (journal === null) continue;
    // the name was created by an interrupted transfer of this same offer: not "already here"
    if (journal.created && journal.offer === id) resumable.add(root);
    for (const [path, d] of journal.done) {
      const st = await publishedFile(join(outDir, ...path.split('/')));
      if (st === null || st.size !== d.size || Math.floor(st.mtimeMs) !== d.mtime) continue; // changed since: not ours to vouch for
      held.set(path, { complete: true, ...d });
      have.push({ path, offset: d.size, digest: d.digest, whole: true });
    }
    for (const path of journal.open) {
      const abs = join(outDir, ...path.split('/'));
      const p = await loadPartial(dirname(abs), path.slice(path.lastIndexOf('/') + 1));
      if (p === null) continue;
      held.set(path, { complete: false, hashes: p.hashes, offset: p.offset });
      have.push({ path, offset: p.offset, digest: digestOf(p.hashes, p.offset), whole: false });
    }
  }
  // a sender takes at most one entry per offered file: when the folder shrank since, partial
  // files (the costly ones) go first
  if (have.length > maxEntries) {
    have.sort((a, b) => Number(a.whole) - Number(b.whole));
    for (const h of have.splice(maxEntries)) held.delete(h.path);
  }
  return { have, held, resumable };
}

/** After a transfer completed: its journals are no longer needed. */
export async function removeJournals(outDir: string, roots: readonly string[]): Promise<void> {
  for (const root of roots) await unlink(join(outDir, stateName(root, 'journal'))).catch(() => undefined);
}
