/**
 * The sender's file walker: turns the command-line arguments into the ordered list of
 * entries to offer. Folders are walked depth-first with an explicit stack (no recursion on
 * the call stack), children sorted by name so the order is stable, a folder's 'dir' entry
 * before its contents so empty folders are sent too. Symlinks inside folders are never
 * followed; sockets, fifos, devices, names the recipient would refuse (src/core/path.ts) and
 * unreadable folders are skipped and reported rather than failing the whole send.
 *
 * `exclude` patterns and `.gitignore` files use gitignore semantics (the `ignore` package).
 */
import type { BigIntStats } from 'node:fs';
import { lstatSync } from 'node:fs';
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
}

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
}

export interface Scan {
  /** The base names of the arguments, in argument order. */
  roots: string[];
  entries: Entry[];
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

interface Child {
  path: string;
  abs: string;
  depth: number;
  kind: 'file' | 'dir';
  size: number;
  mode: number;
  mtimeMs: number;
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

function makeEntry(kind: 'file' | 'dir', path: string, abs: string, m: Meta): Entry {
  return { kind, path, abs, size: kind === 'file' ? m.size : 0, mode: m.mode, mtimeMs: m.mtimeMs };
}

class Walker {
  readonly entries: Entry[] = [];
  readonly skipped: Skipped[] = [];
  readonly #exclude: Ignore | undefined;
  readonly #git: boolean;

  constructor(opts: WalkOptions) {
    const patterns = opts.exclude ?? [];
    if (!Array.isArray(patterns) || patterns.some((p) => typeof p !== 'string')) invalid('exclude must be a list of patterns');
    this.#exclude = patterns.length > 0 ? ignore({ ignorecase: false }).add(patterns) : undefined;
    this.#git = opts.git === true;
  }

  /** Walk one folder argument; `root` is its sent name. */
  async walkFolder(root: string, abs: string, st: Meta): Promise<void> {
    let names: Buffer[];
    try {
      names = await readdir(abs, { encoding: 'buffer' });
    } catch (e) {
      invalid(`cannot read the folder ${displayName(abs)}: ${errnoCode(e) ?? String(e)}`);
    }
    this.entries.push(makeEntry('dir', root, abs, st));
    const stack: Child[] = [];
    await this.#pushChildren(stack, root, abs, 1, names, undefined);
    for (let c = stack.pop(); c !== undefined; c = stack.pop()) {
      if (c.kind === 'file') {
        this.entries.push(makeEntry('file', c.path, c.abs, c));
        continue;
      }
      if (c.depth > MAX_DEPTH) {
        this.skipped.push({ path: c.path, reason: 'too-deep' });
        continue;
      }
      let inner: Buffer[];
      try {
        inner = await readdir(c.abs, { encoding: 'buffer' });
      } catch (e) {
        const code = errnoCode(e);
        // Vanished since we listed its parent: nothing to send, nothing to report.
        if (code !== 'ENOENT') this.skipped.push({ path: c.path, reason: 'unreadable' });
        continue;
      }
      this.entries.push(makeEntry('dir', c.path, c.abs, c));
      await this.#pushChildren(stack, c.path, c.abs, c.depth, inner, c.rules);
    }
  }

  /** Stat the children of one folder and push the ones to send, last name first so the first pops first. */
  async #pushChildren(stack: Child[], dirPath: string, dirAbs: string, dirDepth: number, raw: Buffer[], inherited: GitRules | undefined): Promise<void> {
    const names: string[] = [];
    for (const b of raw) {
      const name = b.toString('utf8');
      // A name that is not valid UTF-8 cannot be sent (nor opened again through its decoded form).
      if (!Buffer.from(name, 'utf8').equals(b)) this.skipped.push({ path: `${dirPath}/${name}`, reason: 'special' });
      else if (!isReserved(name)) names.push(name); // a receive in progress here: its partial files are not content

    }
    names.sort(byName);
    let rules = inherited;
    if (this.#git && names.includes('.gitignore')) rules = (await this.#loadGitignore(dirPath, join(dirAbs, '.gitignore'), inherited)) ?? inherited;

    // Synchronous lstat: folder metadata is in the inode cache after the readdir, and a call
    // costs a few microseconds, where a round trip through the thread pool per name costs more
    // CPU than the call (folders of thousands of small files).
    const stats = names.map((name): BigIntStats | 'gone' | 'unreadable' => {
      try {
        return lstatSync(join(dirAbs, name), { bigint: true, throwIfNoEntry: false }) ?? 'gone';
      } catch (e) {
        return errnoCode(e) === 'ENOENT' ? 'gone' : 'unreadable';
      }
    });
    const children: Child[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const st = stats[i];
      // flat strings (Array.join), not concatenations: a walk keeps every entry, and V8's
      // concatenated strings hold their pieces (about 350 bytes more per entry)
      const path = [dirPath, name].join('/');
      if (st === undefined || st === 'gone') continue; // vanished while we looked
      if (st === 'unreadable') {
        this.skipped.push({ path, reason: 'unreadable' });
        continue;
      }
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
      if (this.#git && ((isDir && name === '.git') || gitIgnored(rules, path, isDir))) continue;
      if (!isSafePath(path)) {
        this.skipped.push({ path, reason: 'special' });
        continue;
      }
      children.push({
        path,
        abs: [dirAbs, name].join(dirAbs.endsWith(sep) ? '' : sep),
        depth: dirDepth + 1,
        kind: isDir ? 'dir' : 'file',
        ...meta(st),
        rules,
      });
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as Child);
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
 * symlink argument is followed), and have distinct, sendable base names; otherwise
 * ERR_INVALID_ARGUMENT.
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
    const name = basename(abs);
    if (name === '') invalid(`cannot send ${displayName(p)}: it has no name (give the files inside it instead)`);
    if (!isSafePath(name)) invalid(`cannot send ${displayName(p)}: the recipient would refuse its name`);
    if (seen.has(name)) invalid(`two arguments are named ${displayName(name)}`);
    seen.add(name);
    roots.push(name);
    resolved.push({ name, abs, st });
  }
  for (const { name, abs, st } of resolved) {
    if (st.isFile()) walker.entries.push(makeEntry('file', name, abs, meta(st)));
    else await walker.walkFolder(name, abs, meta(st));
  }
  let totalFiles = 0;
  let totalBytes = 0;
  let totalDirs = 0;
  for (const e of walker.entries) {
    if (e.kind === 'dir') {
      totalDirs++;
      continue;
    }
    totalFiles++;
    totalBytes += e.size;
  }
  return { roots, entries: walker.entries, totalFiles, totalBytes, totalDirs, skipped: walker.skipped };
}
