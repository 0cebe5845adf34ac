/**
 * Where received files go in the browser, all streaming (no file is held whole in the page's
 * JavaScript heap):
 *  - a folder the user picks (File System Access API, Chromium): each file is written through a
 *    FileSystemWritableFileStream, which the browser publishes under its name only at close(),
 *    i.e. after every byte came in authenticated and the count matched;
 *  - downloads: each file streams into the origin-private file system (on disk) and is
 *    downloaded from there once complete; without OPFS, into a Blob a few MiB at a time.
 * Names come from src/core/recipient-machine.ts, which checked them (safe, under an offered name).
 */
import { TscCrocError } from '../core/errors.js';
import { displayName } from '../core/path.js';
import { ZipStream } from './zip.js';

export interface Sink {
  /** Names of the offer that exist already where we write (the user must agree to replace them). */
  existing(names: readonly string[]): Promise<string[]>;
  makeDir(segments: string[]): Promise<void>;
  /** `mtimeMs`: the sender's modification time (kept where the destination can keep it). */
  open(segments: string[], size: number, mtimeMs?: number): Promise<void>;
  write(data: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  /** Drop what is not committed. */
  abort(): Promise<void>;
  /** Every file is in (the sink that gathers them, a zip, hands them over now). */
  finish?(): Promise<void>;
}

/** Bytes gathered in the page before they move into the growing Blob. */
const BLOB_STEP_BYTES = 4 * 1024 * 1024;

/**
 * Files as downloads from a Blob (where there is no OPFS); a path in a folder becomes one name,
 * its segments joined by '__'. The browser keeps blob data outside the JavaScript heap, but in
 * memory: large files need OpfsDownloadSink.
 */
export class DownloadSink implements Sink {
  #parts: Blob[] = [];
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #name = '';
  readonly saved: string[] = [];

  async existing(): Promise<string[]> {
    return []; // the browser's download manager never replaces a file: it picks a new name
  }
  async makeDir(): Promise<void> {}
  async open(segments: string[]): Promise<void> {
    this.#name = segments.join('__');
    this.#parts = [];
    this.#pending = [];
    this.#pendingBytes = 0;
  }
  async write(data: Uint8Array): Promise<void> {
    this.#pending.push(data);
    this.#pendingBytes += data.length;
    if (this.#pendingBytes >= BLOB_STEP_BYTES) this.#flush();
  }
  #flush(): void {
    if (this.#pending.length === 0) return;
    this.#parts = [new Blob([...this.#parts, ...(this.#pending as BlobPart[])])];
    this.#pending = [];
    this.#pendingBytes = 0;
  }
  async commit(): Promise<void> {
    this.#flush();
    const blob = new Blob(this.#parts, { type: 'application/octet-stream' });
    this.#parts = [];
    startDownload(blob, this.#name);
    this.saved.push(this.#name);
  }
  async abort(): Promise<void> {
    this.#parts = [];
    this.#pending = [];
  }
}

/**
 * Writes of one writable stream kept in flight (they complete in order): at most WRITES_IN_FLIGHT
 * records wait for the disk while the next ones are decrypted, so a slow disk still slows the
 * transfer down, and memory stays bounded (a record is at most 1 MiB). A failed write fails the
 * next write() or close().
 */
const WRITES_IN_FLIGHT = 4;
class WriteWindow {
  readonly #file: FileSystemWritableFileStream;
  #pending: Promise<void>[] = [];
  constructor(file: FileSystemWritableFileStream) {
    this.#file = file;
  }
  async write(data: Uint8Array): Promise<void> {
    const p = this.#file.write(data as Uint8Array<ArrayBuffer>);
    p.catch(() => undefined); // awaited below, in order
    this.#pending.push(p);
    if (this.#pending.length > WRITES_IN_FLIGHT) await this.#pending.shift();
  }
  async #drain(): Promise<void> {
    const all = this.#pending;
    this.#pending = [];
    for (const p of all) await p;
  }
  /** Every write done, then the file closed (published under its name). */
  async close(): Promise<void> {
    await this.#drain();
    await this.#file.close();
  }
  /** Drop the file (what was written is not published). */
  async abort(): Promise<void> {
    await this.#drain().catch(() => undefined);
    await this.#file.abort().catch(() => undefined);
  }
}

/** Prefix of the page's working files in the origin-private file system. */
const OPFS_PREFIX = 'tsc-croc-download-';

/** A new working file in the origin-private file system (a random name under OPFS_PREFIX), open for writing. */
async function opfsWorkFile(root: FileSystemDirectoryHandle): Promise<{ work: string; handle: FileSystemFileHandle; file: FileSystemWritableFileStream }> {
  const id = Array.from(globalThis.crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
  const work = `${OPFS_PREFIX}${id}`;
  const handle = await root.getFileHandle(work, { create: true });
  return { work, handle, file: await handle.createWritable({ keepExistingData: false }) };
}

/**
 * Downloads written through the origin-private file system (OPFS: Chromium, Firefox, Safari, in
 * secure contexts): each file streams to disk through a writable, and once complete the browser
 * downloads it from there, so no file is held in memory at all (the Blob way keeps blob data in the
 * browser's memory where it cannot page it to disk, and the browser cancels large downloads).
 * The working copies are removed the next time the page loads (a download may still read one now).
 */
export class OpfsDownloadSink implements Sink {
  readonly #root: FileSystemDirectoryHandle;
  #handle: FileSystemFileHandle | null = null;
  #file: WriteWindow | null = null;
  #work = '';
  #name = '';
  readonly saved: string[] = [];

  private constructor(root: FileSystemDirectoryHandle) {
    this.#root = root;
  }

  /** The OPFS sink, or null where the browser has no writable OPFS. */
  static async create(): Promise<OpfsDownloadSink | null> {
    try {
      if (typeof FileSystemFileHandle === 'undefined' || !('createWritable' in FileSystemFileHandle.prototype)) return null;
      return new OpfsDownloadSink(await navigator.storage.getDirectory());
    } catch {
      return null;
    }
  }

  /** Remove working copies an earlier visit left. */
  static async clean(): Promise<void> {
    try {
      const root = await navigator.storage.getDirectory();
      const names: string[] = [];
      for await (const name of (root as unknown as { keys(): AsyncIterable<string> }).keys()) if (name.startsWith(OPFS_PREFIX)) names.push(name);
      for (const n of names) await root.removeEntry(n).catch(() => undefined);
    } catch {
      // no OPFS here
    }
  }

  async existing(): Promise<string[]> {
    return [];
  }
  async makeDir(): Promise<void> {}
  async open(segments: string[]): Promise<void> {
    this.#name = segments.join('__');
    const opened = await opfsWorkFile(this.#root);
    ({ work: this.#work, handle: this.#handle } = opened);
    this.#file = new WriteWindow(opened.file);
  }
  async write(data: Uint8Array): Promise<void> {
    await this.#file!.write(data);
  }
  async commit(): Promise<void> {
    await this.#file!.close();
    this.#file = null;
    const file = await this.#handle!.getFile();
    startDownload(file, this.#name);
    this.saved.push(this.#name);
  }
  async abort(): Promise<void> {
    await this.#file?.abort();
    this.#file = null;
    if (this.#work !== '') await this.#root.removeEntry(this.#work).catch(() => undefined);
  }
}

/**
 * A folder (or several names) as one download: `name`.zip, streamed into the origin-private file
 * system as the files arrive (src/web/zip.ts: stored entries, ZIP64, each file's CRC-32 computed
 * on the way), then downloaded once every file is in. Empty folders are kept as folder entries.
 */
export class ZipDownloadSink implements Sink {
  readonly #root: FileSystemDirectoryHandle;
  readonly #file: WriteWindow;
  readonly #zip = new ZipStream();
  readonly #work: string;
  readonly #name: string;
  readonly saved: string[] = [];

  private constructor(root: FileSystemDirectoryHandle, work: string, file: FileSystemWritableFileStream, name: string) {
    this.#root = root;
    this.#work = work;
    this.#file = new WriteWindow(file);
    this.#name = name;
  }

  /** The zip sink writing `name`, or null where the browser has no writable OPFS. */
  static async create(name: string): Promise<ZipDownloadSink | null> {
    try {
      if (typeof FileSystemFileHandle === 'undefined' || !('createWritable' in FileSystemFileHandle.prototype)) return null;
      const root = await navigator.storage.getDirectory();
      const { work, file } = await opfsWorkFile(root);
      return new ZipDownloadSink(root, work, file, name);
    } catch {
      return null;
    }
  }

  async existing(): Promise<string[]> {
    return [];
  }
  #put(bytes: Uint8Array): Promise<void> {
    return this.#file.write(bytes);
  }
  async makeDir(segments: string[]): Promise<void> {
    await this.#put(this.#zip.begin(segments.join('/'), Date.now(), true));
    await this.#put(this.#zip.end());
  }
  async open(segments: string[], _size: number, mtimeMs?: number): Promise<void> {
    await this.#put(this.#zip.begin(segments.join('/'), mtimeMs ?? Date.now()));
  }
  async write(data: Uint8Array): Promise<void> {
    this.#zip.data(data);
    await this.#put(data);
  }
  async commit(): Promise<void> {
    await this.#put(this.#zip.end());
  }
  async finish(): Promise<void> {
    await this.#put(this.#zip.finish());
    await this.#file.close();
    const handle = await this.#root.getFileHandle(this.#work);
    startDownload(await handle.getFile(), this.#name);
    this.saved.push(this.#name);
  }
  async abort(): Promise<void> {
    await this.#file.abort();
    await this.#root.removeEntry(this.#work).catch(() => undefined);
  }
}

/** Hand `blob` to the browser's download manager under `name`. */
function startDownload(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  // the URL stays valid while the page is open (a large download reads it for a while)
  window.addEventListener('pagehide', () => URL.revokeObjectURL(url), { once: true });
}

/** A DOMException's name (the browser's reason), else ''. */
const domName = (e: unknown): string => (e instanceof DOMException ? e.name : '');

/**
 * Files into a folder the user picked (File System Access API). A file is written through a
 * writable stream, which the browser publishes under the file's name only at close (its swap
 * file until then); the name itself, made for the writable, is removed again if the transfer
 * stops before the file is complete, so that nothing partial shows under a final name. Files
 * completed before a failure stay (as the CLI keeps them). Names that exist were agreed to by
 * the user (`existing`, asked before the transfer) or live in such a folder.
 */
export class DirectorySink implements Sink {
  readonly #root: FileSystemDirectoryHandle;
  #file: WriteWindow | null = null;
  #path = '';
  /** The folder and name of the open file, when this transfer created the name (removed on abort). */
  #created: { dir: FileSystemDirectoryHandle; name: string } | null = null;

  constructor(root: FileSystemDirectoryHandle) {
    this.#root = root;
  }

  async existing(names: readonly string[]): Promise<string[]> {
    const found: string[] = [];
    for (const n of names) {
      for (const get of [() => this.#root.getFileHandle(n), () => this.#root.getDirectoryHandle(n)]) {
        try {
          await get();
          found.push(n);
          break;
        } catch {
          // not there (or not that kind)
        }
      }
    }
    return found;
  }

  async #dir(segments: string[]): Promise<FileSystemDirectoryHandle> {
    let d = this.#root;
    for (let i = 0; i < segments.length; i++) {
      try {
        d = await d.getDirectoryHandle(segments[i]!, { create: true });
      } catch (e) {
        throw this.#failed(segments.slice(0, i + 1).join('/'), e);
      }
    }
    return d;
  }

  /** The CLI's error for a name the folder will not give us. */
  #failed(path: string, e: unknown): TscCrocError {
    if (domName(e) === 'TypeMismatchError') return new TscCrocError('ERR_FILE_EXISTS', `${displayName(path)} exists in the chosen folder and is not a ${path === this.#path ? 'file' : 'folder'}`);
    if (domName(e) === 'QuotaExceededError') return new TscCrocError('ERR_DISK_FULL', `no space left to write ${displayName(path)} in the chosen folder`);
    return new TscCrocError('ERR_NOT_WRITABLE', `cannot write ${displayName(path)} in the chosen folder`);
  }

  async makeDir(segments: string[]): Promise<void> {
    await this.#dir(segments);
  }

  async open(segments: string[]): Promise<void> {
    this.#path = segments.join('/');
    const dir = await this.#dir(segments.slice(0, -1));
    const name = segments[segments.length - 1]!;
    let handle: FileSystemFileHandle;
    try {
      handle = await dir.getFileHandle(name);
    } catch (e) {
      if (domName(e) !== 'NotFoundError') throw this.#failed(this.#path, e);
      try {
        handle = await dir.getFileHandle(name, { create: true });
        this.#created = { dir, name };
      } catch (e2) {
        throw this.#failed(this.#path, e2);
      }
    }
    try {
      this.#file = new WriteWindow(await handle.createWritable({ keepExistingData: false }));
    } catch (e) {
      await this.#removeCreated();
      throw this.#failed(this.#path, e);
    }
  }
  async write(data: Uint8Array): Promise<void> {
    await this.#file!.write(data);
  }
  async commit(): Promise<void> {
    await this.#file!.close();
    this.#file = null;
    this.#created = null;
  }
  async abort(): Promise<void> {
    await this.#file?.abort();
    this.#file = null;
    await this.#removeCreated();
  }
  async #removeCreated(): Promise<void> {
    const c = this.#created;
    this.#created = null;
    if (c !== null) await c.dir.removeEntry(c.name).catch(() => undefined);
  }
}
