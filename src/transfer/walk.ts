/**
 * The sender's file walker: turns the command-line arguments into the ordered list of
 * entries to offer. Folders are walked depth-first with an explicit stack (no recursion on
 * the call stack), children sorted by name so the order is stable, a folder's 'dir' entry
 * before its contents so empty folders are sent too. Symlinks inside folders are never
 * followed; sockets, fifos, devices and names the recipient would refuse (src/core/path.ts) are
 * skipped and reported rather than failing the whole send. Every file is checked readable
 * (access(R_OK), about 1.5 µs a file) and every folder listable: what is not fails the walk, so
 * that it fails before a code is shown rather than mid-transfer, unless `skipUnreadable` leaves
 * it out (reported like the others).
 *
 * `exclude` patterns and `.gitignore` files use gitignore semantics (the `ignore` package).
 */
import type { BigIntStats } from 'node:fs';
import { accessSync, constants, lstatSync } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { TscCrocError } from '../core/errors.js';
import { checkRelativePath, displayName, isReserved } from '../core/path.js';

export interface WalkOptions {
  /**
   * Glob patterns to leave out (repeatable --exclude), matched against the path relative to
   * each root's parent, '/'-separated; a pattern without '/' matches a name at any depth (like
   * .gitignore); '**', '*' and '?' supported; 'dir/' matches folders only. An excluded folder
   * is not descended into. The arguments themselves are never excluded.
   */
  exclude?: string[] | undefined;
  /**
   * Honour .gitignore files found in the folders walked (each applies below its own folder,
   * deeper ones override, with '!' negation and directory-only 'dir/' patterns), and always
   * skip '.git' folders.
   */
  git?: boolean | undefined;
  /**
   * Leave out files that cannot be read and folders that cannot be listed (reported in `skipped`
   * with reason 'unreadable'); without it the walk fails on them with ERR_INVALID_ARGUMENT,
   * naming a few. The arguments themselves must always be readable.
   */
  skipUnreadable?: boolean | undefined;
  /** Called now and then (every WALK_PROGRESS_ENTRIES entries) with the count of entries found so far. */
  onProgress?: ((entries: number) => void) | undefined;
}

/** onProgress is called each time this many more entries were found. */
export const WALK_PROGRESS_ENTRIES = 1024;

export interface Entry {
  kind: 'file' | 'dir';
  /** Relative, '/'-separated path as it will be sent, starting with the root's base name ('photos/2024/a.jpg'; a plain file argument is just 'a.jpg'). */
  path: string;
  /** Absolute path on disk. */
  abs: string;
  /** Bytes; 0 for folders. */
  size: number;
  /** Permission bits, `st.mode & 0o777`. */
  mode: number;
  /** Modification time in whole milliseconds (floor of the nanosecond time, computed exactly), never negative. */
  mtimeMs: number;
}

export type SkipReason = 'symlink' | 'special' | 'unreadable' | 'too-deep';

export interface Skipped {
  /** Relative path as it would have been sent (may hold characters unsafe to print: use displayName). */
  path: string;
  reason: SkipReason;
  /** For 'unreadable': the system's error code (EACCES...). */
  error?: string;
}

/**
 * The walk's entries, kept compact and off V8's heap: a walk of 100,000 files keeps every entry
 * until the send ends. One object with two strings per entry cost about 200 bytes of heap each,
 * and every entry surviving young-generation collections grew that generation to its maximum
 * (32 MiB). Here an entry is its sent path as UTF-8 bytes in one growing buffer, plus 20 bytes of
 * numbers in typed arrays; the absolute path is derived from its root's. `get(i)` makes a fresh
 * Entry each time.
 */
export class EntryList implements Iterable<Entry> {
  #length = 0;
  /** The sent paths, UTF-8, one after the other; entry i's ends at #num[3 * i + 2]. */
  #bytes = Buffer.allocUnsafe(16 * 1024);
  #bytesUsed = 0;
  /** Per argument: its absolute path and the length of its sent name. */
  readonly #roots: { abs: string; nameLength: number }[] = [];
  /** Per entry: size, mtimeMs, end of its path in #bytes. */
  #num = new Float64Array(3 * 256);
  /** Per entry: root index << 16 | kind (1 = dir) << 12 | mode. */
  #meta = new Int32Array(256);

  get length(): number {
    return this.#length;
  }

  /** Register an argument; returns its index for push(). */
  addRoot(name: string, abs: string): number {
    this.#roots.push({ abs, nameLength: name.length });
    return this.#roots.length - 1;
  }

  push(root: number, kind: 'file' | 'dir', path: string, m: Meta): void {
    const i = this.#length;
    if (i === this.#meta.length) {
      const num = new Float64Array(this.#num.length * 2);
      num.set(this.#num);
      this.#num = num;
      const meta = new Int32Array(this.#meta.length * 2);
      meta.set(this.#meta);
      this.#meta = meta;
    }
    const n = Buffer.byteLength(path, 'utf8');
    if (this.#bytesUsed + n > this.#bytes.length) {
      const bytes = Buffer.allocUnsafe(Math.max(this.#bytes.length * 2, this.#bytesUsed + n));
      this.#bytes.copy(bytes, 0, 0, this.#bytesUsed);
      this.#bytes = bytes;
    }
    this.#bytesUsed += this.#bytes.write(path, this.#bytesUsed, 'utf8');
    this.#num[3 * i] = kind === 'file' ? m.size : 0;
    this.#num[3 * i + 1] = m.mtimeMs;
    this.#num[3 * i + 2] = this.#bytesUsed;
    this.#meta[i] = (root << 16) | (kind === 'dir' ? 1 << 12 : 0) | (m.mode & 0o7777);
    this.#length = i + 1;
  }

  get(i: number): Entry {
    if (!(Number.isInteger(i) && i >= 0 && i < this.#length)) throw new RangeError(`no entry ${i}`);
    const meta = this.#meta[i]!;
    const path = this.#bytes.toString('utf8', i === 0 ? 0 : this.#num[3 * i - 1]!, this.#num[3 * i + 2]!);
    const root = this.#roots[meta >>> 16]!;
    // the root itself, or below it: its name is replaced by its absolute path
    const abs = path.length === root.nameLength ? root.abs : [root.abs, path.slice(root.nameLength + 1).split('/').join(sep)].join(root.abs.endsWith(sep) ? '' : sep);
    return { kind: meta & (1 << 12) ? 'dir' : 'file', path, abs, size: this.#num[3 * i]!, mode: meta & 0o777, mtimeMs: this.#num[3 * i + 1]! };
  }

  /** Like Array.prototype.at: a negative index counts from the end; undefined when out of range. */
  at(i: number): Entry | undefined {
    const j = i < 0 ? this.#length + i : i;
    return j >= 0 && j < this.#length ? this.get(j) : undefined;
  }

  *[Symbol.iterator](): Iterator<Entry> {
    for (let i = 0; i < this.#length; i++) yield this.get(i);
  }
}

export interface Scan {
  /** The base names of the arguments, in argument order. */
  roots: string[];
  entries: EntryList;
  totalFiles: number;
  totalBytes: number;
  /** Count of 'dir' entries (the folder arguments included). */
  totalDirs: number;
  /** Things found inside folders and left out (not the excluded or git-ignored ones, which are left out on purpose). */
  skipped: Skipped[];
}

/** Folders nested deeper than this (counting the root as 1) are skipped with reason 'too-deep'. */
export const MAX_DEPTH = 256;
/** A .gitignore larger than this is not a real one; it is ignored (and still sent). */
const MAX_GITIGNORE_BYTES = 1024 * 1024;

function invalid(message: string): never {
  throw new TscCrocError('ERR_INVALID_ARGUMENT', message);
}

function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** null if this user may read the file at `abs`, else the error code (ENOENT: it vanished meanwhile). */
function unreadable(abs: string): string | null {
  try {
    accessSync(abs, constants.R_OK);
    return null;
  } catch (e) {
    return errnoCode(e) ?? 'EACCES';
  }
}

/** Unreadable things named in the walk's error, at most. */
const NAMED_UNREADABLE = 3;

/** The walk's error for what it could not read (skipUnreadable not set). */
function unreadableError(items: Skipped[]): never {
  const what = (n: number) => (n === 1 ? '1 file or folder' : `${n} files or folders`);
  const named = items.slice(0, NAMED_UNREADABLE).map((s) => `${displayName(s.path)} (${s.error ?? 'EACCES'})`);
  const more = items.length > NAMED_UNREADABLE ? `, and ${items.length - NAMED_UNREADABLE} more` : '';
  invalid(`cannot read ${what(items.length)}: ${named.join(', ')}${more}; fix the permissions, or leave them out with --skip-unreadable`);
}

function isSafePath(path: string): boolean {
  try {
    checkRelativePath(path);
    return true;
  } catch {
    return false;
  }
}

/** The .gitignore rules in force in a folder: its own file's matcher, then its ancestors'. */
interface GitRules {
  /** The folder the rules belong to, as a sent path ('photos/2024'). */
  base: string;
  matcher: Ignore;
  parent: GitRules | undefined;
}

/** Deepest .gitignore with an opinion wins; no opinion anywhere means kept. */
function gitIgnored(rules: GitRules | undefined, path: string, isDir: boolean): boolean {
  for (let r = rules; r !== undefined; r = r.parent) {
    const rel = path.slice(r.base.length + 1) + (isDir ? '/' : '');
    const result = r.matcher.test(rel);
    if (result.unignored) return false;
    if (result.ignored) return true;
  }
  return false;
}

/**
 * A folder being walked: its names, sorted, and the next one to visit. Children are stat'ed when
 * their turn comes, so what lives through the walk is one array of names per open folder, not an
 * object per child (a survivor of a scavenge is promoted, and many survivors grow V8's young
 * generation: a walk of 100,000 files took it to its 32 MiB maximum).
 */
interface Frame {
  path: string;
  abs: string;
  depth: number;
  names: string[];
  next: number;
  rules: GitRules | undefined;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Size, permission bits and whole milliseconds, from bigint stats: `st.mtimeMs` as a double can land a hair below the millisecond the file was stamped with. */
interface Meta {
  size: number;
  mode: number;
  mtimeMs: number;
}

/**
 * The modification time in whole milliseconds, floored from the exact nanoseconds, never negative.
 * Every comparison of a file's time with what the walk recorded goes through this: `Math.floor(st.mtimeMs)`
 * of the double can round up to the next millisecond when the time lies a few dozen ns below it.
 */
export function wholeMs(st: BigIntStats): number {
  const ms = st.mtimeNs / 1_000_000n;
  return ms > 0n ? Number(ms) : 0;
}

function meta(st: BigIntStats): Meta {
  return { size: Number(st.size), mode: Number(st.mode & 0o777n), mtimeMs: wholeMs(st) };
}

/** A folder's names: those that are valid UTF-8, and (decoded, for the report) those that are not. */
interface Listing {
  names: string[];
  invalid: string[];
}

/**
 * The names in a folder. A name that is not valid UTF-8 cannot be sent (nor opened again through
 * its decoded form): it decodes with U+FFFD, so only a folder with such a character is listed
 * again as bytes to tell the invalid names from real U+FFFD characters (listing every folder as
 * Buffers cost one ArrayBuffer per name).
 */
async function readNames(abs: string): Promise<Listing> {
  const names = await readdir(abs);
  if (!names.some((n) => n.includes('\uFFFD'))) return { names, invalid: [] };
  const listing: Listing = { names: [], invalid: [] };
  for (const b of await readdir(abs, { encoding: 'buffer' })) {
    const name = b.toString('utf8');
    (Buffer.from(name, 'utf8').equals(b) ? listing.names : listing.invalid).push(name);
  }
  return listing;
}

class Walker {
  readonly entries = new EntryList();
  readonly skipped: Skipped[] = [];
  readonly #exclude: Ignore | undefined;
  readonly #git: boolean;
  readonly #onProgress: ((entries: number) => void) | undefined;

  constructor(opts: WalkOptions) {
    const patterns = opts.exclude ?? [];
    if (!Array.isArray(patterns) || patterns.some((p) => typeof p !== 'string')) invalid('exclude must be a list of patterns');
    this.#exclude = patterns.length > 0 ? ignore({ ignorecase: false }).add(patterns) : undefined;
    this.#git = opts.git === true;
    this.#onProgress = opts.onProgress;
  }

  #progress(): void {
    if (this.#onProgress !== undefined && this.entries.length % WALK_PROGRESS_ENTRIES === 0) this.#onProgress(this.entries.length);
  }

  /** Walk one folder argument; `root` is its sent name. */
  async walkFolder(root: string, abs: string, st: Meta): Promise<void> {
    const r = this.entries.addRoot(root, abs);
    let names: Listing;
    try {
      names = await readNames(abs);
    } catch (e) {
      invalid(`cannot read the folder ${displayName(abs)}: ${errnoCode(e) ?? String(e)}`);
    }
    this.entries.push(r, 'dir', root, st);
    const stack: Frame[] = [await this.#frame(root, abs, 1, names, undefined)];
    while (stack.length > 0) {
      const f = stack.at(-1)!;
      if (f.next === f.names.length) {
        stack.pop();
        continue;
      }
      const name = f.names[f.next++]!;
      // Synchronous lstat: folder metadata is in the inode cache after the readdir, and a call
      // costs a few microseconds, where a round trip through the thread pool per name costs more
      // CPU than the call (folders of thousands of small files).
      let st: BigIntStats | undefined;
      const childAbs = [f.abs, name].join(f.abs.endsWith(sep) ? '' : sep);
      try {
        st = lstatSync(childAbs, { bigint: true, throwIfNoEntry: false });
      } catch (e) {
        // (a folder we may list but not enter: EACCES for each name in it)
        if (errnoCode(e) !== 'ENOENT') this.skipped.push({ path: [f.path, name].join('/'), reason: 'unreadable', error: errnoCode(e) ?? 'EACCES' });
        continue;
      }
      if (st === undefined) continue; // vanished while we looked
      // flat strings (Array.join), not concatenations: a walk keeps every entry, and V8's
      // concatenated strings hold their pieces (about 350 bytes more per entry)
      const path = [f.path, name].join('/');
      if (st.isSymbolicLink()) {
        this.skipped.push({ path, reason: 'symlink' });
        continue;
      }
      const isDir = st.isDirectory();
      if (!isDir && !st.isFile()) {
        this.skipped.push({ path, reason: 'special' });
        continue;
      }
      if (this.#exclude !== undefined && this.#exclude.ignores(isDir ? `${path}/` : path)) continue;
      if (this.#git && ((isDir && name === '.git') || gitIgnored(f.rules, path, isDir))) continue;
      if (!isSafePath(path)) {
        this.skipped.push({ path, reason: 'special' });
        continue;
      }
      if (!isDir) {
        const error = unreadable(childAbs);
        if (error === 'ENOENT') continue; // vanished while we looked
        if (error !== null) {
          this.skipped.push({ path, reason: 'unreadable', error });
          continue;
        }
        this.entries.push(r, 'file', path, meta(st));
        this.#progress();
        continue;
      }
      const depth = f.depth + 1;
      if (depth > MAX_DEPTH) {
        this.skipped.push({ path, reason: 'too-deep' });
        continue;
      }
      const dirAbs = [f.abs, name].join(f.abs.endsWith(sep) ? '' : sep);
      let inner: Listing;
      try {
        inner = await readNames(dirAbs);
      } catch (e) {
        // Vanished since we listed its parent: nothing to send, nothing to report.
        if (errnoCode(e) !== 'ENOENT') this.skipped.push({ path, reason: 'unreadable', error: errnoCode(e) ?? 'EACCES' });
        continue;
      }
      this.entries.push(r, 'dir', path, meta(st));
      this.#progress();
      stack.push(await this.#frame(path, dirAbs, depth, inner, f.rules));
    }
  }

  /** A folder to walk: its names to send (sorted), its .gitignore rules. */
  async #frame(dirPath: string, dirAbs: string, depth: number, listing: Listing, inherited: GitRules | undefined): Promise<Frame> {
    for (const name of listing.invalid) this.skipped.push({ path: `${dirPath}/${name}`, reason: 'special' });
    // a receive in progress here: its partial files are not content
    const names = listing.names.filter((name) => !isReserved(name)).sort(byName);
    let rules = inherited;
    if (this.#git && names.includes('.gitignore')) rules = (await this.#loadGitignore(dirPath, join(dirAbs, '.gitignore'), inherited)) ?? inherited;
    return { path: dirPath, abs: dirAbs, depth, names, next: 0, rules };
  }

  async #loadGitignore(base: string, abs: string, parent: GitRules | undefined): Promise<GitRules | undefined> {
    try {
      const st = await lstat(abs);
      if (!st.isFile() || st.size > MAX_GITIGNORE_BYTES) return undefined;
      const text = await readFile(abs, 'utf8');
      return { base, matcher: ignore({ ignorecase: false }).add(text), parent };
    } catch {
      return undefined; // an unreadable .gitignore is like none
    }
  }
}

/**
 * Walk every argument, folders recursively (depth-first, children sorted by name, a folder's
 * 'dir' entry before its contents). Arguments must exist, be regular files or folders (a
 * symlink argument is followed), be readable, and have distinct, sendable base names;
 * otherwise ERR_INVALID_ARGUMENT. So is a file or folder inside that cannot be read, unless
 * `skipUnreadable` leaves it out.
 */
export async function scanSources(paths: string[], opts: WalkOptions = {}): Promise<Scan> {
  if (!Array.isArray(paths) || paths.length === 0) invalid('nothing to send: give at least one file or folder');
  const walker = new Walker(opts);
  const roots: string[] = [];
  const seen = new Set<string>();
  const resolved: { name: string; abs: string; st: BigIntStats }[] = [];
  for (const p of paths) {
    if (typeof p !== 'string' || p.length === 0) invalid('an empty path was given');
    const abs = resolve(p);
    let st;
    try {
      st = await stat(abs, { bigint: true });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') invalid(`no such file: ${displayName(p)}`);
      invalid(`cannot read ${displayName(p)}: ${errnoCode(e) ?? String(e)}`);
    }
    if (!st.isFile() && !st.isDirectory()) invalid(`not a regular file or folder: ${displayName(p)}`);
    const error = st.isFile() ? unreadable(abs) : null;
    if (error !== null) invalid(`cannot read ${displayName(p)} (${error})`);
    const name = basename(abs);
    if (name === '') invalid(`cannot send ${displayName(p)}: it has no name (give the files inside it instead)`);
    if (!isSafePath(name)) invalid(`cannot send ${displayName(p)}: the recipient would refuse its name`);
    if (seen.has(name)) invalid(`two arguments are named ${displayName(name)}`);
    seen.add(name);
    roots.push(name);
    resolved.push({ name, abs, st });
  }
  for (const { name, abs, st } of resolved) {
    if (st.isFile()) walker.entries.push(walker.entries.addRoot(name, abs), 'file', name, meta(st));
    else await walker.walkFolder(name, abs, meta(st));
  }
  if (opts.skipUnreadable !== true) {
    const unread = walker.skipped.filter((s) => s.reason === 'unreadable');
    if (unread.length > 0) unreadableError(unread);
  }
  let totalFiles = 0;
  let totalBytes = 0;
  let totalDirs = 0;
  for (let i = 0; i < walker.entries.length; i++) {
    const e = walker.entries.get(i);
    if (e.kind === 'dir') {
      totalDirs++;
      continue;
    }
    totalFiles++;
    totalBytes += e.size;
  }
  return { roots, entries: walker.entries, totalFiles, totalBytes, totalDirs, skipped: walker.skipped };
}
