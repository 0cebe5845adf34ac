/**
 * Loads the CLI's CommonJS bundle (dist/tsc-croc-cli.cjs) with a V8 code cache, so that a start
 * does not parse and compile ~700 KB of JavaScript again (bench/README.md, "Session 5: start-up").
 *
 * The first run of a command (send, receive, relay, anything else) compiles the bundle as usual
 * and, when the process exits, saves V8's code for everything that run compiled into the user's
 * cache directory; the next runs of that command read it back. A cache is per build of the CLI
 * (the bundle's SHA-256, fixed at build time), per node version and architecture, and per
 * command, so each holds the functions its command runs. V8 checks the rest itself (its version,
 * its flags, the source's length) and refuses a cache that does not fit: the bundle is then
 * compiled as usual and the cache written again. Nothing secret is in a cache: it holds compiled
 * code of the bundle and its literals, never a value of the run.
 *
 *   - where: $XDG_CACHE_HOME/tsc-croc, else ~/.cache/tsc-croc (macOS ~/Library/Caches/tsc-croc,
 *     Windows %LOCALAPPDATA%\tsc-croc); TSC_CROC_CODE_CACHE=off turns the cache off.
 *   - safety: loading compiled code from a file is running it, so a cache is read only from a
 *     directory and a file owned by the user and writable by nobody else (on POSIX); the file is
 *     written under a temporary name and renamed, so a reader never sees half of one; caches of
 *     other builds are removed when a new one is written.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { Script } from 'node:vm';
import { trace } from '../transfer/trace.js';

/** What the cache did on this start (for tests and TSC_CROC_TRACE). */
export type CodeCacheOutcome = 'off' | 'none' | 'accepted' | 'rejected';

export interface LoadOptions {
  /** The CommonJS file. */
  file: string;
  /** Identifies the file's build (its hash): part of the cache's name. */
  buildId: string;
  /** Which cache of this build: a word from a fixed set (never anything a user typed). */
  kind: string;
  /** The CommonJS `require` the file gets (one from the same directory resolves the same). */
  require: NodeJS.Require;
  env?: NodeJS.ProcessEnv;
}

/** The cache directory, or undefined when off or unknown. */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const setting = (env.TSC_CROC_CODE_CACHE ?? '').toLowerCase();
  if (setting === 'off' || setting === '0' || setting === 'false') return undefined;
  const xdg = env.XDG_CACHE_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, 'tsc-croc');
  let home: string;
  try {
    home = homedir();
  } catch {
    return undefined;
  }
  if (home === '' || !isAbsolute(home)) return undefined;
  if (process.platform === 'darwin') return join(home, 'Library', 'Caches', 'tsc-croc');
  if (process.platform === 'win32') return env.LOCALAPPDATA && isAbsolute(env.LOCALAPPDATA) ? join(env.LOCALAPPDATA, 'tsc-croc', 'Cache') : undefined;
  return join(home, '.cache', 'tsc-croc');
}

const FILE_PREFIX = 'cli-';

/** The cache file's name: build, node, architecture and kind. */
export function codeCacheName(buildId: string, kind: string): string {
  return `${FILE_PREFIX}${buildId}-node${process.versions.node}-${process.arch}-${process.versions.v8.replace(/[^0-9a-z.]/gi, '_')}-${kind}.v8`;
}

/** Owned by this user and writable by no one else (POSIX; elsewhere, as the OS's ACLs say). */
function trusted(st: Stats): boolean {
  if (process.platform === 'win32' || typeof process.getuid !== 'function') return true;
  return st.uid === process.getuid() && (st.mode & 0o022) === 0;
}

function readCache(dir: string, name: string): Buffer | undefined {
  let fd: number | undefined;
  try {
    if (!trusted(statSync(dir))) return undefined;
    fd = openSync(join(dir, name), 'r');
    const st = fstatSync(fd);
    if (!st.isFile() || !trusted(st) || st.size === 0 || st.size > MAX_CACHE_BYTES) return undefined;
    return readFileSync(fd);
  } catch {
    return undefined; // none yet, or unreadable: compile as usual
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const STALE_MS = 24 * 3600 * 1000;

/** Far above any real cache (~0.5 MB); a bigger file is not ours. */
const MAX_CACHE_BYTES = 64 * 1024 * 1024;

function writeCache(dir: string, name: string, data: Buffer, buildId: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!trusted(statSync(dir))) return;
    const tmp = join(dir, `${name}.${process.pid}.tmp`);
    writeFileSync(tmp, data, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, join(dir, name));
    // caches of other builds, and temporary files of writers that died, not written for a day: an
    // upgrade leaves none behind, and two installs in use side by side do not remove each other's
    const old = Date.now() - STALE_MS;
    for (const f of readdirSync(dir)) {
      if (!f.startsWith(FILE_PREFIX) || (f.startsWith(`${FILE_PREFIX}${buildId}-`) && !f.endsWith('.tmp'))) continue;
      const p = join(dir, f);
      if (statSync(p).mtimeMs < old) unlinkSync(p);
    }
  } catch {
    // a cache is an optimisation: a read-only or full disk only means the next start compiles again
  }
}

/**
 * Runs `file` as a CommonJS module and returns its exports, compiled from the code cache when
 * one fits. Also returns what the cache did.
 */
export function loadWithCodeCache<T>(opts: LoadOptions): { exports: T; cache: CodeCacheOutcome } {
  const env = opts.env ?? process.env;
  const dir = codeCacheDir(env);
  const name = codeCacheName(opts.buildId, opts.kind);
  const cached = dir === undefined ? undefined : readCache(dir, name);
  const source = readFileSync(opts.file, 'utf8');
  const wrapper = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new Script(wrapper, { filename: opts.file, cachedData: cached });
  const cache: CodeCacheOutcome = dir === undefined ? 'off' : cached === undefined ? 'none' : script.cachedDataRejected === true ? 'rejected' : 'accepted';
  trace(`cli: code cache ${cache}`);
  if (dir !== undefined && cache !== 'accepted') {
    // at exit: the cache then holds every function this run compiled, not only the top level
    process.once('exit', () => writeCache(dir, name, script.createCachedData(), opts.buildId));
  }
  const module = { exports: {} as T };
  const fn = script.runInThisContext() as (exports: T, require: NodeJS.Require, module: { exports: T }, filename: string, dirname: string) => void;
  fn.call(module.exports, module.exports, opts.require, module, opts.file, dirname(opts.file));
  return { exports: module.exports, cache };
}
