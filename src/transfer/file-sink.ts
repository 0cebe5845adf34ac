/**
 * Writing received files safely. Each file is written under a temporary name in its final
 * folder (created with O_EXCL, so never through a planted symlink), exactly the authenticated
 * bytes that came between its `file` and `file-end` (their count checked against the announced
 * size by the recipient machine); only then is it fsync'ed and given its final name, without
 * replacing an existing file unless overwriting was allowed. The temporary name is stable per
 * file, and large files keep a checkpoint (how many bytes are durable) beside it and a journal
 * entry in the output folder (src/transfer/resume-store.ts), so an interrupted transfer
 * continues where it stopped. A small file is kept in memory until its end and then written
 * whole in the background (open, write, mode, time, fdatasync, journal, name), a bounded number
 * at once, so thousands of small files do not wait on each other's system calls; the files of a
 * `batch` (protocol v3) are written together in one turn, made durable, journalled in one write
 * and published in the background (writeBatch). Parent folders
 * are created one level at a time and a symlink anywhere below the output folder is refused. A
 * top-level folder that already exists is written into only when overwriting was allowed (so a
 * transfer cannot add files to an existing folder, a repository say, behind the user's back);
 * folders get their mode and mtime at the end, deepest first.
 */
import * as fs from 'node:fs';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, stat, statfs, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { TscCrocError } from '../core/errors.js';
import type { BatchEntry, DirMessage, FileMessage } from '../core/messages.js';
import { displayName } from '../core/path.js';
import { releaseRecordChunks } from './secure-channel.js';
import { Checkpoint, Journal, RESUME_MIN_BYTES, removeJournals, stateName, type Held } from './resume-store.js';

/** Room kept free beyond what an offer needs (journal, checkpoints, folder entries): see checkRoom(). */
export const SPACE_MARGIN_BYTES = 1024 * 1024;

/** Files written or given their final name at once, in the background. */
const PUBLISH_CONCURRENCY = 16;
/**
 * Files of batches written and waiting (open) for their fdatasync in the background, at most:
 * a bound on open descriptors (a batch holds up to 1024 files).
 */
const BATCH_PENDING_FILES = 2048;
/** Bytes of small files held in memory, waiting to be written in the background. */
const PUBLISH_QUEUE_BYTES = 8 * 1024 * 1024;

/** Permission bits kept from the sender: read and execute bits, and the owner's write bit. */
const SAFE_MODE_BITS = 0o755;

/** Received data is made durable and its count recorded this often (and when interrupted). */
const CHECKPOINT_BYTES = 64 * 1024 * 1024;
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
/** statfs f_type of file systems held in memory: tmpfs, ramfs (Linux magic numbers). */
const IN_MEMORY_FS = new Set([0x01021994, 0x858458f6]);

export interface CommittedFile {
  path: string;
  size: number;
  /** Bytes of it that an earlier, interrupted run had already received. */
  resumed: number;
}

/**
 * A time for utimes(): the middle of the millisecond, because a float number of seconds can land
 * a hair below it on disk (…123 ms stored as …122.9999), and the sender floors to milliseconds.
 */
function mtimeSeconds(ms: number): number {
  return (ms + 0.5) / 1000;
}

function ioError(what: string, e: unknown): TscCrocError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new TscCrocError('ERR_DISK_FULL', `the disk is full: ${what} (${code}); what arrived is kept, run the same command again to resume`, { cause: e });
  if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM')
    return new TscCrocError('ERR_NOT_WRITABLE', `${what} (${code}): the output folder is not writable`, { cause: e });
  return new TscCrocError('ERR_IO', `${what}${code ? ` (${code})` : ''}`, { cause: e });
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError(`cannot inspect ${p}`, e);
  }
}

interface OpenFile {
  file: FileMessage;
  finalPath: string;
  tempPath: string;
  /** The partial, open; null for a small file, whose bytes wait in `small` until it ends. */
  handle: FileHandle | null;
  small: Buffer[];
  /** Bytes of the file written (for a small file: held). */
  offset: number;
  /** The checkpoint beside the partial (large files only). */
  checkpoint: Checkpoint | null;
  /** Bytes written since the last checkpoint. */
  sinceCheckpoint: number;
  /** Replace the final name even without overwrite: it is a file an earlier run of this transfer wrote. */
  replace: boolean;
  /** A top-level file whose name did not exist before this transfer. */
  rootCreated: boolean;
  /** In a folder this transfer created: no partial of an earlier run can be there. */
  fresh: boolean;
}

/** A file already complete from an earlier run (the sender proved it equal to its own): nothing to write. */
interface KeptFile {
  kept: true;
  file: FileMessage;
  finalPath: string;
}

export class FileSink {
  readonly #outDir: string;
  #overwrite: boolean;
  #current: OpenFile | KeptFile | null = null;
  /** What earlier runs left, by path (findHeld in resume-store.ts). */
  #held = new Map<string, Held>();
  /** One journal per top-level name, opened when something is first written under it (the promise: opens may race). */
  readonly #journals = new Map<string, Promise<Journal>>();
  /** The top-level names of this transfer (their journals go once it completes). */
  #roots: string[] = [];
  /** Identifies the offer (resume-store.ts offerId), written into new journals. */
  #offerId = '';
  /**
   * An earlier session of this run was interrupted: partial files may be left anywhere, so even
   * folders this run created are looked at before writing.
   */
  #interrupted = false;
  /** Top-level names an earlier run of this transfer created: their folders get mode and time like new ones. */
  readonly #resumedRoots = new Set<string>();
  /** Every top-level name a journal was written for (their journals go once the transfer completes). */
  readonly #journalRoots = new Set<string>();
  /** Top-level folders this transfer created: written into freely. */
  readonly #ownRoots = new Set<string>();
  /** Folders to give their mode and mtime once everything inside is written. */
  readonly #dirs: { path: string; depth: number; mode: number; mtime: number }[] = [];
  /** Folders already checked (or created) in this transfer: not looked at again for each file. */
  readonly #checked = new Set<string>();
  /** Folders this transfer created: nothing can be in them that it did not write. */
  readonly #created = new Set<string>();
  /** Of those, the top-level ones (path -> name): their journal goes with them (removeEmptyFolders). */
  readonly #createdRoots = new Map<string, string>();
  /** Verified files being given their mode, time and name, while the next file streams in. */
  readonly #publishing = new Set<Promise<void>>();
  /** Bytes of small files in #publishing not yet written. */
  #publishingBytes = 0;
  /** Files of batches in #publishing (written, open until their fdatasync). */
  #publishingFiles = 0;
  /** Folders known to exist and checked, by the '/'-joined relative path of a file's parent (batches). */
  readonly #parentDirs = new Map<string, string>();
  #publishError: unknown = null;

  get outDir(): string {
    return this.#outDir;
  }

  /**
   * The output folder is on a file system in memory (tmpfs, ramfs), where fdatasync returns at
   * once: small files' fdatasync is then called synchronously, without a thread-pool round trip.
   */
  #inMemory = false;

  /** SAFE_MODE_BITS, less what the user's umask takes away. */
  readonly #modeMask: number;

  constructor(outDir: string, overwrite: boolean) {
    this.#modeMask = SAFE_MODE_BITS & ~process.umask();
    this.#outDir = outDir;
    this.#overwrite = overwrite;
  }

  /**
   * What earlier, interrupted runs left for these top-level names: the names among them that are
   * such a transfer are written into without asking again, and `held` says what each file has.
   */
  resumeFrom(roots: readonly string[], offerId: string, held: Map<string, Held>, resumable: ReadonlySet<string>): void {
    this.#offerId = offerId;
    this.#roots = [...roots];
    this.#held = held;
    for (const r of resumable) {
      this.#ownRoots.add(r);
      this.#resumedRoots.add(r);
    }
  }

  /** Which of the offered top-level names already exist in the output folder (and are not a transfer of ours to resume). */
  async existing(names: string[]): Promise<string[]> {
    const found: string[] = [];
    for (const n of names) if (!this.#ownRoots.has(n) && (await lstatOrNull(join(this.#outDir, n))) !== null) found.push(n);
    return found;
  }

  /** The journal of a top-level name; `created`: this transfer created that name (recorded when the journal is new). */
  #journal(root: string, created = false): Promise<Journal> {
    let j = this.#journals.get(root);
    if (j === undefined) {
      j = Journal.open(this.#outDir, root, created, this.#offerId).catch((e: unknown) => {
        this.#journals.delete(root);
        throw ioError(`cannot write in ${displayName(this.#outDir)}`, e);
      });
      this.#journals.set(root, j);
      this.#journalRoots.add(root);
    }
    return j;
  }

  /** The transfer completed: close the journals and remove them. */
  async finishAll(): Promise<void> {
    await this.flush();
    const roots = new Set([...this.#roots, ...this.#journalRoots]);
    await this.closeJournals();
    await removeJournals(this.#outDir, [...roots]);
  }

  async closeJournals(): Promise<void> {
    for (const j of this.#journals.values()) await (await j.catch(() => null))?.close();
    this.#journals.clear();
  }

  /** The user agreed (or not) to replace or add to what exists. */
  allowOverwrite(allow: boolean): void {
    this.#overwrite = allow;
  }

  /**
   * Check the output folder once, before the transfer starts; a missing one is created, with its
   * missing parents (like `mkdir -p`, as croc does): returns true when it was. A path that names
   * something else than a folder, or runs through a file, is ERR_INVALID_ARGUMENT; one that
   * cannot be created, ERR_NOT_WRITABLE.
   */
  async checkOutDir(): Promise<boolean> {
    // (ENOTDIR: a part of the path is a file; mkdir says which below)
    const st = await lstat(this.#outDir).catch((e: unknown) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw ioError(`cannot inspect ${displayName(this.#outDir)}`, e);
    });
    const created = st === null;
    if (created) await this.#createOutDir();
    // the output folder itself may be a symlink the user chose; follow it once
    const real = st === null || st.isSymbolicLink() ? await stat(this.#outDir).catch(() => null) : st;
    if (real === null) throw new TscCrocError('ERR_INVALID_ARGUMENT', `the output folder ${displayName(this.#outDir)} is a symlink to nothing`);
    if (!real.isDirectory()) throw new TscCrocError('ERR_INVALID_ARGUMENT', `the output folder ${displayName(this.#outDir)} is not a folder`);
    try {
      this.#inMemory = IN_MEMORY_FS.has(fs.statfsSync(this.#outDir).type);
    } catch {
      this.#inMemory = false; // no statfs here: treat it as a disk
    }
    return created;
  }

  async #createOutDir(): Promise<void> {
    try {
      await mkdir(this.#outDir, { recursive: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTDIR' && code !== 'EEXIST') throw ioError(`cannot create the output folder ${displayName(this.#outDir)}`, e);
      // which part of the path is not a folder: the nearest that exists
      let p = code === 'EEXIST' ? this.#outDir : dirname(this.#outDir);
      while (p !== dirname(p) && (await lstat(p).catch(() => null)) === null) p = dirname(p);
      throw new TscCrocError('ERR_INVALID_ARGUMENT', `cannot create the output folder ${displayName(this.#outDir)}: ${displayName(p)} is not a folder`);
    }
  }

  /**
   * Refuse an offer that cannot fit, before anything is written (ERR_DISK_FULL): it needs its
   * bytes less those already here from an interrupted run (`heldBytes`), one block per file and
   * folder (each takes at least its entry, a part block is a whole one), and SPACE_MARGIN_BYTES;
   * what is free is what an unprivileged user may use (statfs f_bavail). Where the file system
   * counts inodes, as many must be free as files and folders are offered. Without statfs here,
   * nothing is checked (a full disk then fails the write with ERR_DISK_FULL, and what arrived is kept).
   */
  async checkRoom(totalBytes: number, heldBytes: number, entries: number): Promise<void> {
    let st: fs.StatsFs;
    try {
      st = await statfs(this.#outDir);
    } catch {
      return;
    }
    const free = st.bavail * st.bsize;
    const need = Math.max(0, totalBytes - heldBytes) + entries * st.bsize + SPACE_MARGIN_BYTES;
    if (need > free)
      throw new TscCrocError(
        'ERR_DISK_FULL',
        `not enough space in ${displayName(this.#outDir)}: this transfer needs ${sizeText(need)} (with room for ${entries} files and folders), ${sizeText(free)} is free; nothing was written`,
      );
    if (st.files > 0 && entries > st.ffree)
      throw new TscCrocError('ERR_DISK_FULL', `not enough room in ${displayName(this.#outDir)}: this transfer holds ${entries} files and folders, the file system has room for ${st.ffree} more; nothing was written`);
  }

  /**
   * The transfer failed for good: every folder it created that holds nothing (no partial to
   * resume, no finished file) is removed, deepest first. Only folders this transfer created, by
   * the paths it created them at; rmdir removes nothing but an empty folder and never follows a
   * symlink, so a folder that something else filled meanwhile stays. A top-level folder that goes
   * takes its journal with it. Returns how many were removed.
   */
  async removeEmptyFolders(): Promise<number> {
    await this.closeJournals();
    const depth = (p: string) => p.split('/').length;
    const dirs = [...this.#created].sort((a, b) => depth(b) - depth(a));
    let removed = 0;
    const goneRoots: string[] = [];
    for (const d of dirs) {
      try {
        fs.rmdirSync(d); // a folder entry only: synchronous, thousands cost milliseconds
      } catch {
        continue; // not empty (kept to resume), or not ours any more
      }
      removed++;
      this.#created.delete(d);
      this.#checked.delete(d);
      const root = this.#createdRoots.get(d);
      if (root !== undefined) {
        goneRoots.push(root);
        this.#ownRoots.delete(root);
        this.#createdRoots.delete(d);
      }
    }
    this.#dirs.length = 0;
    this.#parentDirs.clear();
    await removeJournals(this.#outDir, goneRoots);
    return removed;
  }

  /** Create a folder (a `dir` message); its mode and mtime are applied by finishDirs(). */
  async makeDir(dir: DirMessage, segments: string[]): Promise<void> {
    const path = await this.#makeParents(segments);
    // an existing folder keeps its own mode and time: consent to add to it is not consent to open it up
    // (folders an interrupted run of this transfer created are its own too)
    if (this.#created.has(path) || this.#resumedRoots.has(segments[0]!)) this.#dirs.push({ path, depth: segments.length, mode: dir.mode, mtime: dir.mtime });
  }

  /** Give every folder its mode (masked like files, and always owner-accessible) and mtime, deepest first. */
  async finishDirs(): Promise<void> {
    await this.flush();
    const dirs = this.#dirs.splice(0).sort((a, b) => b.depth - a.depth);
    for (const d of dirs) {
      try {
        await chmod(d.path, (d.mode & this.#modeMask) | 0o700);
        await utimes(d.path, Date.now() / 1000, mtimeSeconds(d.mtime));
      } catch (e) {
        throw ioError(`cannot set the mode or time of ${displayName(d.path)}`, e);
      }
    }
  }

  /**
   * Open a file to receive, from `file.offset` on: 0 starts afresh; more continues the partial an
   * earlier run left (what `held` says we have; the recipient machine allows no other offset).
   * Refuses early when a file is already there and overwriting is not allowed.
   */
  async open(file: FileMessage, segments: string[]): Promise<void> {
    if (this.#current) throw new Error('FileSink: a file is already open');
    const dir = await this.#makeParents(segments.slice(0, -1));
    const name = segments.at(-1)!;
    const finalPath = join(dir, name);
    this.#throwIfFailed();
    const held = this.#held.get(file.path);
    if (held?.complete === true && file.offset === file.size && file.size === held.size) {
      this.#current = { kept: true, file, finalPath };
      return;
    }
    // a file an earlier run of this transfer wrote, which the sender now sends again (it changed)
    const replace = held?.complete === true;
    // in a folder this transfer created, nothing can be there already (each path comes once),
    // unless an interrupted session left it
    const fresh = this.#created.has(dir) && !this.#interrupted;
    const existing = fresh ? null : await lstatOrNull(finalPath);
    if (existing !== null) {
      if (existing.isDirectory()) throw new TscCrocError('ERR_FILE_EXISTS', `${displayName(finalPath)} is a folder`);
      if (!this.#overwrite && !replace)
        throw new TscCrocError('ERR_FILE_EXISTS', `${displayName(finalPath)} already exists (nothing was overwritten; use --overwrite to replace it)`);
    }
    const tempPath = join(dir, stateName(name, 'partial'));
    // a top-level file is "created" by this transfer if nothing had its name (a folder's journal began with the folder)
    const rootCreated = segments.length === 1 && existing === null;
    const base = { file, finalPath, tempPath, small: [], offset: file.offset, sinceCheckpoint: 0, replace, rootCreated, fresh };
    if (file.size < RESUME_MIN_BYTES) {
      // small: held in memory up to its end, then written whole in the background (commit)
      if (file.offset !== 0) throw new Error('FileSink: a small file is never resumed');
      this.#current = { ...base, handle: null, checkpoint: null };
      return;
    }
    const checkpoint = new Checkpoint(dir, name);
    let handle: FileHandle | undefined;
    try {
      if (file.offset > 0) {
        if (held?.complete !== false || held.offset !== file.offset) throw new Error('FileSink: no partial to resume at that offset');
        handle = await open(tempPath, constants.O_RDWR | NOFOLLOW);
        const st = await handle.stat();
        if (!st.isFile() || st.nlink !== 1 || st.size < file.offset)
          throw new TscCrocError('ERR_IO', `the partial file of ${displayName(file.path)} changed since it was checked; run again`);
        // past the proven prefix: bytes a crash may have spoilt, sent again
        await handle.truncate(file.offset);
        await handle.datasync();
        await checkpoint.record(file.offset);
      } else {
        // a partial of an earlier run that cannot be continued (the sender's file changed) goes;
        // in a folder this transfer created there is none
        if (!fresh) {
          await unlink(tempPath).catch(() => undefined);
          await checkpoint.reset();
        }
        handle = await open(tempPath, 'wx', 0o600);
        await checkpoint.record(0); // says which boot of the system wrote the partial
      }
      await (await this.#journal(segments[0]!, rootCreated)).opened(file.path);
    } catch (e) {
      await handle?.close().catch(() => undefined); // nothing stays open when opening fails
      if (e instanceof TscCrocError) throw e;
      throw ioError(`cannot create a file in ${displayName(dir)}`, e);
    }
    this.#current = { ...base, handle, checkpoint };
  }

  /** The open file's data is on disk: record how much of it, beside it. */
  async #checkpoint(cur: OpenFile): Promise<void> {
    cur.sinceCheckpoint = 0;
    if (cur.checkpoint === null || cur.handle === null) return;
    try {
      await cur.handle.datasync();
      await cur.checkpoint.record(cur.offset);
    } catch (e) {
      throw ioError(`cannot write beside ${displayName(cur.file.path)}`, e);
    }
  }

  /**
   * Append the pieces of one record. A large file's pieces are written at once, synchronously
   * (pwritev on this thread), and handed back (releaseRecordChunks): a write into the page cache
   * costs less than a hop through libuv's thread pool and its promise, and the recipient then
   * holds no record that is written but not yet freed, and the bytes go out from the core that
   * decrypted them (1 GiB: peak RSS ~2.5 MiB and CPU ~0.13 s lower; bench/README.md, "Session
   * 5"). A disk that blocks the write blocks the reading of the socket too, as a full write
   * queue did: the sender waits, and our stall clock does not run while we write (it counts only
   * waits on the network).
   */
  async write(chunks: Buffer[]): Promise<void> {
    const cur = this.#current;
    if (!cur || 'kept' in cur) throw new Error('FileSink: no open file');
    let length = 0;
    for (const c of chunks) length += c.length;
    if (cur.handle === null) {
      // a small file (the recipient machine bounds its bytes by its size)
      cur.small.push(...chunks);
      cur.offset += length;
      return;
    }
    try {
      writeAllSync(cur.handle.fd, chunks, cur.offset);
    } catch (e) {
      throw ioError('cannot write the received file', e);
    }
    cur.offset += length;
    releaseRecordChunks(chunks); // written: their memory can go
    cur.sinceCheckpoint += length;
    if (cur.sinceCheckpoint >= CHECKPOINT_BYTES) await this.#checkpoint(cur);
  }

  /**
   * All of the file's bytes are in (the recipient machine counted them against its size): it is
   * written (a small file), given its mode and mtime, made durable, recorded in the journal and
   * given its final name in the background (up to PUBLISH_CONCURRENCY files at once). A failure
   * there surfaces at the next call; flush() waits for all of them.
   */
  async commit(): Promise<CommittedFile> {
    const cur = this.#current;
    if (!cur) throw new Error('FileSink: no open file');
    this.#current = null;
    // a file an earlier run received: the sender proved it equal to its own (docs/protocol.md §6.5)
    if ('kept' in cur) return { path: cur.finalPath, size: cur.file.size, resumed: cur.file.size };
    const bytes = cur.handle === null ? cur.offset : 0;
    this.#publishingBytes += bytes;
    const job = this.#finish(cur).catch((e: unknown) => {
      this.#publishError ??= e;
    });
    this.#publishing.add(job);
    void job.finally(() => {
      this.#publishing.delete(job);
      this.#publishingBytes -= bytes;
    });
    while (this.#publishing.size >= PUBLISH_CONCURRENCY || this.#publishingBytes > PUBLISH_QUEUE_BYTES) await Promise.race(this.#publishing);
    this.#throwIfFailed();
    return { path: cur.finalPath, size: cur.file.size, resumed: cur.file.offset };
  }

  /**
   * Write the files of a batch (protocol v3). Their bytes are one DATA record, already
   * authenticated by the record layer and of exactly the sum of their sizes (the recipient
   * machine checked both, and every path), in `chunks`: file i is the next `files[i].size` bytes.
   * In one turn, with synchronous calls (a few microseconds each from the page cache, where a
   * thread-pool round trip per call cost more than the call): each file is created under its
   * temporary name (O_EXCL, never through a symlink, its final mode), written, given its mtime;
   * then, in the background while the next records stream in, each is fdatasync'ed (a
   * synchronous call on a file system in memory; else all of the batch's at once in the thread
   * pool) and closed, the batch gets one journal write of its `done` lines, and then every file
   * its final name (#publish). So what a crash can leave is what it could for one small file:
   * never a final name without its journal line and its data on disk.
   */
  async writeBatch(files: readonly BatchEntry[], segments: readonly string[][], chunks: readonly Buffer[]): Promise<CommittedFile[]> {
    if (this.#current) throw new Error('FileSink: a file is already open');
    this.#throwIfFailed();
    const n = files.length;
    while (this.#publishing.size >= PUBLISH_CONCURRENCY || (this.#publishingFiles > 0 && this.#publishingFiles + n > BATCH_PENDING_FILES)) await Promise.race(this.#publishing);
    this.#throwIfFailed();
    const dirs: string[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const path = files[i]!.path;
      const cut = path.lastIndexOf('/');
      const rel = cut < 0 ? '' : path.slice(0, cut);
      let dir = this.#parentDirs.get(rel);
      if (dir === undefined) {
        dir = await this.#makeParents(segments[i]!.slice(0, -1));
        this.#parentDirs.set(rel, dir);
      }
      dirs[i] = dir;
    }
    const written: { fd: number; tempPath: string; finalPath: string; replace: boolean; file: BatchEntry; root: string; rootCreated: boolean }[] = [];
    const dropWritten = () => {
      for (const w of written) {
        if (w.fd >= 0) closeQuietly(w.fd);
        unlinkQuietly(w.tempPath);
      }
    };
    let chunk = 0;
    let inChunk = 0;
    const now = Date.now() / 1000;
    for (let i = 0; i < n; i++) {
      const file = files[i]!;
      const segs = segments[i]!;
      const dir = dirs[i]!;
      const name = segs[segs.length - 1]!;
      // (a checked single segment below a joined, normalized folder: no join() needed)
      const finalPath = dir + sep + name;
      // a file an earlier run of this transfer wrote, which the sender now sends again (it changed)
      const replace = this.#held.get(file.path)?.complete === true;
      // in a folder this transfer created nothing can be there already, unless an interrupted session left it
      const fresh = this.#created.has(dir) && !this.#interrupted;
      let existing: fs.Stats | undefined;
      try {
        existing = fresh ? undefined : fs.lstatSync(finalPath, { throwIfNoEntry: false });
      } catch (e) {
        dropWritten();
        throw ioError(`cannot inspect ${displayName(finalPath)}`, e);
      }
      if (existing !== undefined) {
        dropWritten();
        if (existing.isDirectory()) throw new TscCrocError('ERR_FILE_EXISTS', `${displayName(finalPath)} is a folder`);
        if (!this.#overwrite && !replace)
          throw new TscCrocError('ERR_FILE_EXISTS', `${displayName(finalPath)} already exists (nothing was overwritten; use --overwrite to replace it)`);
      }
      const tempPath = dir + sep + stateName(name, 'partial');
      // a partial an interrupted session left goes (in a fresh folder there is none)
      if (!fresh) unlinkQuietly(tempPath);
      // this file's bytes: the next file.size bytes of the record, across its pieces
      const parts: Buffer[] = [];
      let need = file.size;
      while (need > 0) {
        const c = chunks[chunk]!;
        const take = Math.min(need, c.length - inChunk);
        parts.push(take === c.length ? c : c.subarray(inChunk, inChunk + take));
        need -= take;
        inChunk += take;
        if (inChunk === c.length) {
          chunk++;
          inChunk = 0;
        }
      }
      let fd = -1;
      try {
        fd = fs.openSync(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, file.mode & this.#modeMask);
        writeAllSync(fd, parts);
        fs.futimesSync(fd, now, mtimeSeconds(file.mtime));
        if (this.#inMemory) {
          fs.fdatasyncSync(fd);
          const closing = fd;
          fd = -1;
          fs.closeSync(closing);
        }
      } catch (e) {
        if (fd >= 0) closeQuietly(fd);
        unlinkQuietly(tempPath);
        dropWritten();
        throw ioError(`cannot write ${displayName(file.path)}`, e);
      }
      written.push({ fd, tempPath, finalPath, replace, file, root: segs[0]!, rootCreated: segs.length === 1 && existing === undefined });
    }
    this.#publishingFiles += n;
    const job = this.#finishBatch(written).catch((e: unknown) => {
      this.#publishError ??= e;
    });
    this.#publishing.add(job);
    void job.finally(() => {
      this.#publishing.delete(job);
      this.#publishingFiles -= n;
    });
    const out: CommittedFile[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = { path: written[i]!.finalPath, size: files[i]!.size, resumed: 0 };
    return out;
  }

  /** A batch's files are written: durable, closed, journalled, then published (see writeBatch). */
  async #finishBatch(written: { fd: number; tempPath: string; finalPath: string; replace: boolean; file: BatchEntry; root: string; rootCreated: boolean }[]): Promise<void> {
    try {
      if (!this.#inMemory) await datasyncAll(written.map((w) => w.fd));
    } catch (e) {
      for (const w of written) unlinkQuietly(w.tempPath);
      throw ioError('cannot finish writing the received files', e);
    } finally {
      for (const w of written) if (w.fd >= 0) closeQuietly(w.fd);
    }
    try {
      // before the final names appear, so a run killed in between still knows the files are ours
      let i = 0;
      while (i < written.length) {
        const { root, rootCreated } = written[i]!;
        let j = i + 1;
        while (j < written.length && written[j]!.root === root) j++;
        await (await this.#journal(root, rootCreated)).doneMany(written.slice(i, j).map((w) => ({ path: w.file.path, size: w.file.size, mtime: w.file.mtime })));
        i = j;
      }
    } catch (e) {
      for (const w of written) unlinkQuietly(w.tempPath);
      throw ioError(`cannot write in ${displayName(this.#outDir)}`, e);
    }
    for (let i = 0; i < written.length; i++) {
      try {
        this.#publish(written[i]!);
      } catch (e) {
        for (const w of written.slice(i + 1)) unlinkQuietly(w.tempPath);
        throw e;
      }
    }
  }

  /** Wait until every complete file is under its final name; throws the first failure. */
  async flush(): Promise<void> {
    await Promise.all(this.#publishing);
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#publishError !== null) throw this.#publishError;
  }

  async #finish(cur: OpenFile): Promise<void> {
    const handle = cur.handle;
    try {
      if (handle === null) {
        // a small file: a partial an interrupted session left goes (in a fresh folder there is none)
        if (!cur.fresh) await unlink(cur.tempPath).catch(() => undefined);
        await writeSmall(cur.tempPath, cur.small, cur.file.mode & this.#modeMask, mtimeSeconds(cur.file.mtime), this.#inMemory);
        cur.small = [];
      } else {
        await handle.chmod(cur.file.mode & this.#modeMask);
        await handle.utimes(Date.now() / 1000, mtimeSeconds(cur.file.mtime));
        await handle.datasync();
        await handle.close();
      }
    } catch (e) {
      await handle?.close().catch(() => undefined);
      await unlink(cur.tempPath).catch(() => undefined);
      await cur.checkpoint?.remove();
      if (e instanceof TscCrocError) throw e;
      throw ioError(`cannot finish writing ${displayName(cur.file.path)}`, e);
    }
    try {
      // before the final name appears, so a run killed in between still knows the file is ours
      await (await this.#journal(cur.file.path.split('/')[0]!, cur.rootCreated)).done(cur.file.path, cur.file.size, cur.file.mtime);
    } catch (e) {
      await unlink(cur.tempPath).catch(() => undefined);
      throw ioError(`cannot write in ${displayName(this.#outDir)}`, e);
    }
    this.#publish(cur);
    await cur.checkpoint?.remove();
  }

  /**
   * Stop writing the open file. Partial data stays under its temporary name unless `keep` is
   * false; a partial with no byte in it holds nothing to resume, so it goes either way, with its
   * checkpoint (and the journal of a top-level file this transfer created: it vouches for nothing
   * else). Returns the partial kept, if any.
   */
  async abort(keep: boolean): Promise<string | null> {
    await Promise.all(this.#publishing); // complete files finish publishing; nothing is left running
    this.#interrupted = true;
    const cur = this.#current;
    this.#current = null;
    if (!cur || 'kept' in cur || cur.handle === null) {
      // (a small file is only in memory: nothing to keep)
      await this.closeJournals();
      return null;
    }
    // what arrived is made durable and its count recorded, so the next run continues from here
    if (keep) await this.#checkpoint(cur).catch(() => undefined);
    else if (cur.file.offset > 0) {
      // this session's bytes go, but not what an earlier run had received: back to where it started
      await cur.handle.truncate(cur.file.offset).catch(() => undefined);
      await cur.checkpoint?.record(cur.file.offset).catch(() => undefined);
    }
    // (what is on disk, not what was handed to writes: a first write that failed leaves 0 bytes)
    const empty = await cur.handle.stat().then((st) => st.size === 0, () => false);
    await cur.handle.close().catch(() => undefined);
    await cur.checkpoint?.close();
    await this.closeJournals();
    if ((!keep && cur.file.offset === 0) || empty) {
      await unlink(cur.tempPath).catch(() => undefined);
      await cur.checkpoint?.remove();
      if (cur.rootCreated) {
        await removeJournals(this.#outDir, [cur.file.path]);
        this.#journalRoots.delete(cur.file.path);
      }
      return null;
    }
    return cur.tempPath;
  }

  /**
   * Give a finished file its final name. Synchronous calls: rename, link and unlink only touch
   * folder entries (no data to wait for), and a thread-pool round trip each costs more CPU than
   * the call itself when thousands of small files are published.
   */
  #publish(cur: { tempPath: string; finalPath: string; replace: boolean }): void {
    const dropTemp = () => {
      try {
        fs.unlinkSync(cur.tempPath);
      } catch {
        // already gone
      }
    };
    try {
      if (this.#overwrite || cur.replace) {
        fs.renameSync(cur.tempPath, cur.finalPath);
        return;
      }
      // link() fails with EEXIST instead of replacing: no race with a file created meanwhile
      fs.linkSync(cur.tempPath, cur.finalPath);
      fs.unlinkSync(cur.tempPath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        dropTemp();
        throw new TscCrocError('ERR_FILE_EXISTS', `${displayName(cur.finalPath)} appeared while receiving; nothing was overwritten`);
      }
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EXDEV') {
        // a file system without hard links: check, then rename
        let there: fs.Stats | undefined;
        try {
          there = fs.lstatSync(cur.finalPath, { throwIfNoEntry: false });
        } catch (e2) {
          dropTemp();
          throw ioError(`cannot inspect ${displayName(cur.finalPath)}`, e2);
        }
        if (there !== undefined) {
          dropTemp();
          throw new TscCrocError('ERR_FILE_EXISTS', `${displayName(cur.finalPath)} already exists`);
        }
        try {
          fs.renameSync(cur.tempPath, cur.finalPath);
        } catch (e2) {
          dropTemp();
          throw ioError(`cannot rename into ${displayName(cur.finalPath)}`, e2);
        }
        return;
      }
      dropTemp();
      throw ioError(`cannot rename into ${displayName(cur.finalPath)}`, e);
    }
  }

  /**
   * Create each folder of `parents` below the output folder, refusing symlinks, non-folders, and
   * existing top-level folders. Levels already checked in this transfer are skipped without
   * rebuilding their paths, so deep trees cost one level per folder.
   */
  async #makeParents(parents: string[]): Promise<string> {
    const full = join(this.#outDir, ...parents);
    if (parents.length === 0 || this.#checked.has(full)) return full;
    let dir = this.#outDir;
    let from = 0;
    const above = parents.length > 1 ? join(this.#outDir, ...parents.slice(0, -1)) : null;
    if (above !== null && this.#checked.has(above)) {
      dir = above;
      from = parents.length - 1;
    }
    for (let i = from; i < parents.length; i++) {
      const seg = parents[i]!;
      dir = join(dir, seg);
      if (this.#checked.has(dir)) continue;
      const st = await lstatOrNull(dir);
      if (st === null) {
        await mkdir(dir, 0o700).catch((e) => {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new TscCrocError('ERR_FILE_EXISTS', `${displayName(dir)} appeared while receiving`);
          throw ioError(`cannot create folder ${displayName(dir)}`, e);
        });
        if (i === 0) {
          this.#ownRoots.add(seg);
          this.#createdRoots.set(dir, seg);
          await this.#journal(seg, true); // from now on a rerun knows this folder as ours to resume into
        }
        this.#created.add(dir);
      } else if (st.isSymbolicLink()) {
        throw new TscCrocError('ERR_UNSAFE_PATH', `refused to write through the symlink ${displayName(dir)}`);
      } else if (!st.isDirectory()) {
        throw new TscCrocError('ERR_FILE_EXISTS', `${displayName(dir)} exists and is not a folder`);
      } else if (i === 0 && !this.#ownRoots.has(seg) && !this.#overwrite) {
        throw new TscCrocError('ERR_FILE_EXISTS', `the folder ${displayName(dir)} already exists (nothing was added to it; use --overwrite to write into it)`);
      }
      this.#checked.add(dir);
    }
    return dir;
  }
}

/**
 * Write a small file whole under `path`: create it (O_EXCL, never through a symlink) with its
 * final mode (less the umask), write, set its times, fdatasync, close. The create, write, times
 * and close are synchronous calls (a few microseconds each for a file under 1 MiB, which sits in
 * the page cache); only the fdatasync, which may wait on the disk, goes to the thread pool: one
 * round trip through it per file instead of five, which is most of the recipient's CPU per small
 * file when thousands arrive. `syncDatasync` (a file system in memory, where it returns at once):
 * the fdatasync too is a synchronous call.
 */
function writeSmall(path: string, chunks: Buffer[], mode: number, mtime: number, syncDatasync: boolean): Promise<void> {
  let fd: number;
  try {
    fd = fs.openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, mode);
  } catch (e) {
    return Promise.reject(e);
  }
  try {
    let bufs = chunks.filter((c) => c.length > 0);
    let at = 0;
    while (bufs.length > 0) {
      let n = fs.writevSync(fd, bufs, at);
      if (n === 0) throw Object.assign(new Error('no progress writing'), { code: 'EIO' });
      at += n;
      while (bufs.length > 0 && n >= bufs[0]!.length) n -= bufs.shift()!.length;
      if (n > 0) bufs = [bufs[0]!.subarray(n), ...bufs.slice(1)];
    }
    fs.futimesSync(fd, Date.now() / 1000, mtime);
    if (syncDatasync) fs.fdatasyncSync(fd);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      // the write's failure is the one to report
    }
    return Promise.reject(e);
  }
  if (syncDatasync) {
    try {
      fs.closeSync(fd); // (the descriptor is released even when close fails)
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return new Promise((resolve, reject) => {
    fs.fdatasync(fd, (e) => {
      try {
        fs.closeSync(fd);
      } catch (e2) {
        return reject(e ?? e2);
      }
      if (e) reject(e);
      else resolve();
    });
  });
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // the descriptor is released even when close fails
  }
}

function unlinkQuietly(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {
    // already gone
  }
}

/** pwritev all of `parts` at `position` (default 0) with synchronous calls, going on after a short write. */
function writeAllSync(fd: number, parts: Buffer[], position = 0): void {
  let bufs = parts;
  let at = position;
  while (bufs.length > 0) {
    let w = bufs.length === 1 ? fs.writeSync(fd, bufs[0]!, 0, bufs[0]!.length, at) : fs.writevSync(fd, bufs, at);
    if (w === 0) throw Object.assign(new Error('no progress writing'), { code: 'EIO' });
    at += w;
    while (bufs.length > 0 && w >= bufs[0]!.length) {
      w -= bufs[0]!.length;
      bufs = bufs.slice(1);
    }
    if (w > 0) bufs = [bufs[0]!.subarray(w), ...bufs.slice(1)];
  }
}

/** fdatasync every descriptor through the thread pool, all at once; rejects with the first failure after all ended. */
function datasyncAll(fds: readonly number[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = fds.length;
    let failure: unknown = null;
    if (left === 0) return resolve();
    for (const fd of fds)
      fs.fdatasync(fd, (e) => {
        if (e) failure ??= e;
        if (--left === 0) {
          if (failure !== null) reject(failure);
          else resolve();
        }
      });
  });
}

/** A size for a message: MiB or GiB with one decimal, bytes below 1 MiB. */
function sizeText(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${n} bytes`;
}
