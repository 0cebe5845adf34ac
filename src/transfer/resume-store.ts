/**
 * What an interrupted receive leaves behind so that the next run continues it (docs/protocol.md
 * §6.4, §6.5), and reading it back. Three kinds of hidden files, all named `.tsc-croc-<id>.<kind>`
 * where id is derived from the name they belong to, so a rerun finds them again:
 *
 * - `<name>.partial` beside the final name: the bytes received so far;
 * - `<name>.checkpoint` beside it: a magic line, the u64be count of leading bytes of the
 *   partial that were on disk (fdatasync'ed) when it was written, and the id of the running
 *   system boot: a rerun in the same boot offers the whole partial (a killed process loses
 *   nothing the kernel has), after a reboot only the durable count;
 * - `<top-level name>.journal` in the output folder, one per offered top-level name: JSON lines,
 *   `{"open":path}` when a large file starts and `{"done":path,"size":n,"mtime":ms}` when a
 *   file is complete, so a rerun knows which partials to look for and which files it already wrote.
 *
 * What a rerun holds is proven to the sender by the chunk digest (src/core/chunk-digest.ts) of
 * those bytes, read once when the offer comes. Everything read back is checked as if it were
 * hostile: a sender can never create these names (src/core/path.ts reserves the prefix), but the
 * disk may have been touched meanwhile.
 */
import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { lstat, open, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CHUNK_SIZE, ChunkHasher } from '../core/chunk-digest.js';
import type { HaveEntry } from '../core/messages.js';
import { RESERVED_PREFIX, checkRelativePath } from '../core/path.js';

export type StateKind = 'partial' | 'checkpoint' | 'journal';

/** Files smaller than this are not worth resuming: they are sent again whole, and not journaled as open. */
export const RESUME_MIN_BYTES = CHUNK_SIZE;
/** The largest journal read back (about 2.5 million entries). */
const MAX_JOURNAL_BYTES = 256 * 1024 * 1024;
const CHECKPOINT_MAGIC = Buffer.from('tsc-croc checkpoint v2\n', 'utf8');
const BOOT_ID_BYTES = 16;
const CHECKPOINT_BYTES = CHECKPOINT_MAGIC.length + 8 + BOOT_ID_BYTES;

let cachedBootId: Buffer | undefined;
/** The id of this boot of the system (Linux), or 16 zero bytes where there is none to read. */
function bootId(): Buffer {
  if (cachedBootId === undefined) {
    cachedBootId = Buffer.alloc(BOOT_ID_BYTES);
    try {
      const hex = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '');
      if (/^[0-9a-f]{32}$/.test(hex)) cachedBootId = Buffer.from(hex, 'hex');
    } catch {
      // not Linux: every rerun is treated as after a reboot
    }
  }
  return cachedBootId;
}
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/** `.tsc-croc-<16 hex digits>.<kind>`: stable for a name, short whatever the name's length. */
export function stateName(name: string, kind: StateKind): string {
  const input = `tsc-croc/v1/state\0${name}`;
  // the one-shot hash (Node 20.12+) where there is one: a small file's temporary name is derived per file
  const id = (oneShotHash !== undefined ? oneShotHash('sha256', input, 'hex') : createHash('sha256').update(input, 'utf8').digest('hex')).slice(0, 16);
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
  | { complete: false; offset: number; digest: string };

interface JournalState {
  /** This transfer created the top-level name (it did not exist before). */
  created: boolean;
  /** The offer it was written for (offerId). */
  offer: string;
  open: Set<string>;
  done: Map<string, { size: number; mtime: number }>;
}

/**
 * An open file handle for appending journal lines. Lines appended while a write is under way go
 * out together in the next write (many small files finishing at once cost one write, not one
 * each); each append resolves once its own line is written.
 */
export class Journal {
  #handle: FileHandle;
  /** Lines waiting for the next write, and who waits for them. */
  #lines: string[] = [];
  #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #writing: Promise<void> | null = null;
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
    return new Promise((resolve, reject) => {
      this.#lines.push(`${JSON.stringify(o)}\n`);
      this.#waiters.push({ resolve, reject });
      this.#writing ??= this.#writeAll();
    });
  }

  async #writeAll(): Promise<void> {
    while (this.#lines.length > 0) {
      const text = this.#lines.join('');
      const waiters = this.#waiters;
      this.#lines = [];
      this.#waiters = [];
      try {
        await this.#handle.write(text);
        for (const w of waiters) w.resolve();
      } catch (e) {
        for (const w of waiters) w.reject(e);
      }
    }
    this.#writing = null;
  }

  opened(path: string): Promise<void> {
    return this.#append({ open: path });
  }

  /** A complete file, recorded before its final name appears. */
  done(path: string, size: number, mtime: number): Promise<void> {
    return this.#append({ done: path, size, mtime });
  }

  /** Complete files (a batch), recorded in one write before their final names appear. */
  doneMany(files: readonly { path: string; size: number; mtime: number }[]): Promise<void> {
    if (files.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      // the line of done(), written out: {"done":<path>,"size":<n>,"mtime":<ms>}
      for (const f of files) this.#lines.push(`{"done":${JSON.stringify(f.path)},"size":${f.size},"mtime":${f.mtime}}\n`);
      this.#waiters.push({ resolve, reject });
      this.#writing ??= this.#writeAll();
    });
  }

  async close(): Promise<void> {
    await this.#writing?.catch(() => undefined);
    await this.#handle.close().catch(() => undefined);
  }
}

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
      Number.isSafeInteger(o.mtime) && (o.mtime as number) >= 0
    ) {
      // (a journal of version 1 also carries a digest: it is not needed, what we hold is hashed when offered)
      state.open.delete(o.done);
      state.done.set(o.done, { size: o.size as number, mtime: o.mtime as number });
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
 * A file we published (the final name of a complete file), or null. A run killed between
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
 * The chunk digest of the first `length` bytes of the file open as `fh`, reading them once; null
 * if the file is shorter than that.
 */
export async function digestPrefix(fh: FileHandle, length: number): Promise<string | null> {
  const hasher = new ChunkHasher();
  const buf = Buffer.allocUnsafe(Math.min(CHUNK_SIZE, Math.max(1, length)));
  while (hasher.length < length) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - hasher.length), hasher.length);
    if (bytesRead === 0) return null;
    hasher.update(buf.subarray(0, bytesRead));
  }
  return hasher.digest();
}

/**
 * What a checkpoint file records: the durable offset, and whether it was written in this boot of
 * the system; null when there is none we can use.
 */
async function readCheckpoint(path: string): Promise<{ durable: number; sameBoot: boolean } | null> {
  const fh = await open(path, constants.O_RDONLY | NOFOLLOW).catch(() => null);
  if (fh === null) return null;
  try {
    const st = await fh.stat();
    if (!ours(st) || st.size !== CHECKPOINT_BYTES) return null;
    const b = Buffer.alloc(CHECKPOINT_BYTES);
    const { bytesRead } = await fh.read(b, 0, CHECKPOINT_BYTES, 0);
    if (bytesRead !== CHECKPOINT_BYTES || !b.subarray(0, CHECKPOINT_MAGIC.length).equals(CHECKPOINT_MAGIC)) return null;
    const n = b.readBigUInt64BE(CHECKPOINT_MAGIC.length);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    const boot = b.subarray(CHECKPOINT_MAGIC.length + 8);
    const sameBoot = !boot.equals(Buffer.alloc(BOOT_ID_BYTES)) && boot.equals(bootId());
    return { durable: Number(n), sameBoot };
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

/**
 * What we can offer of a partial file, and the digest of those bytes, read once: all of it when
 * its checkpoint was written in this boot of the system (the process may have been killed, but
 * the kernel kept every byte it wrote); after a reboot only the durable count the checkpoint
 * records (later bytes may have been lost or spoilt by the crash). Null when nothing is usable.
 */
export async function loadPartial(dir: string, name: string): Promise<{ offset: number; digest: string } | null> {
  const cp = await readCheckpoint(join(dir, stateName(name, 'checkpoint')));
  if (cp === null) return null;
  const fh = await open(join(dir, stateName(name, 'partial')), constants.O_RDONLY | NOFOLLOW).catch(() => null);
  if (fh === null) return null;
  try {
    const st = await fh.stat();
    if (!ours(st)) return null;
    const offset = cp.sameBoot ? st.size : Math.min(cp.durable, st.size);
    if (offset === 0) return null;
    const digest = await digestPrefix(fh, offset);
    return digest === null ? null : { offset, digest };
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

/** The checkpoint beside a partial: rewritten in place (one small write) after each fdatasync of the partial. */
export class Checkpoint {
  readonly #path: string;
  #handle: FileHandle | null = null;
  readonly #buf = Buffer.alloc(CHECKPOINT_BYTES);

  constructor(dir: string, name: string) {
    this.#path = join(dir, stateName(name, 'checkpoint'));
    CHECKPOINT_MAGIC.copy(this.#buf);
    bootId().copy(this.#buf, CHECKPOINT_MAGIC.length + 8);
  }

  /** The first `offset` bytes of the partial are on disk (call only after its fdatasync, or with 0 for a new partial). */
  async record(offset: number): Promise<void> {
    this.#handle ??= await open(this.#path, constants.O_WRONLY | constants.O_CREAT | NOFOLLOW, 0o600);
    this.#buf.writeBigUInt64BE(BigInt(offset), CHECKPOINT_MAGIC.length);
    // one write of 47 bytes at offset 0: it lands whole or, after a crash, leaves an older count
    await this.#handle.write(this.#buf, 0, CHECKPOINT_BYTES, 0);
  }

  /** Start over: no checkpoint (a partial begun afresh). */
  async reset(): Promise<void> {
    await this.remove();
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
 * (written into without asking again; a name that existed before is asked about again). Reads
 * once what it offers (complete files and the checkpointed prefix of partial ones), to prove it.
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
      const digest = await digestFile(join(outDir, ...path.split('/')), d.size);
      if (digest === null) continue;
      held.set(path, { complete: true, ...d, digest });
      have.push({ path, offset: d.size, digest, whole: true });
    }
    for (const path of journal.open) {
      const abs = join(outDir, ...path.split('/'));
      const p = await loadPartial(dirname(abs), path.slice(path.lastIndexOf('/') + 1));
      if (p === null) continue;
      held.set(path, { complete: false, offset: p.offset, digest: p.digest });
      have.push({ path, offset: p.offset, digest: p.digest, whole: false });
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

/** The digest of a complete file we published, read once (null if it is not `size` bytes now). */
async function digestFile(path: string, size: number): Promise<string | null> {
  const fh = await open(path, constants.O_RDONLY | NOFOLLOW).catch(() => null);
  if (fh === null) return null;
  try {
    const st = await fh.stat();
    if (!ours(st) || st.size !== size) return null;
    return await digestPrefix(fh, size);
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

/** After a transfer completed: its journals are no longer needed. */
export async function removeJournals(outDir: string, roots: readonly string[]): Promise<void> {
  for (const root of roots) await unlink(join(outDir, stateName(root, 'journal'))).catch(() => undefined);
}
