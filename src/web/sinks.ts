/**
 * Where received files go in the browser. Two ways, both streaming (no file is held whole in the
 * page's memory):
 *  - a folder the user picks (File System Access API, Chromium): each file is written through a
 *    FileSystemWritableFileStream, which the browser publishes under its name only at close(),
 *    i.e. after every byte came in authenticated and the count matched;
 *  - downloads: the bytes are gathered into a Blob a few MiB at a time (the browser keeps blob
 *    data outside the JavaScript heap, on disk when large), downloaded when the file is complete.
 * Names come from src/core/recipient-machine.ts, which checked them (safe, under an offered name).
 */
import { TscCrocError } from '../core/errors.js';
import { displayName } from '../core/path.js';

export interface Sink {
  /** Names of the offer that exist already where we write (the user must agree to replace them). */
  existing(names: readonly string[]): Promise<string[]>;
  makeDir(segments: string[]): Promise<void>;
  open(segments: string[], size: number): Promise<void>;
  write(data: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  /** Drop what is not committed. */
  abort(): Promise<void>;
}

/** Bytes gathered in the page before they move into the growing Blob. */
const BLOB_STEP_BYTES = 4 * 1024 * 1024;

/** Files as downloads; a path in a folder becomes one name, its segments joined by '__'. */
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
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = this.#name;
    a.rel = 'noopener';
    document.body.append(a);
    a.click();
    a.remove();
    // the download has its own reference to the blob once started
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    this.saved.push(this.#name);
  }
  async abort(): Promise<void> {
    this.#parts = [];
    this.#pending = [];
  }
}

/** Files into a folder the user picked (File System Access API). */
export class DirectorySink implements Sink {
  readonly #root: FileSystemDirectoryHandle;
  #file: FileSystemWritableFileStream | null = null;
  #path = '';

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
    for (const s of segments) d = await d.getDirectoryHandle(s, { create: true });
    return d;
  }

  async makeDir(segments: string[]): Promise<void> {
    await this.#dir(segments);
  }

  async open(segments: string[]): Promise<void> {
    this.#path = segments.join('/');
    const dir = await this.#dir(segments.slice(0, -1));
    const handle = await dir.getFileHandle(segments[segments.length - 1]!, { create: true });
    try {
      this.#file = await handle.createWritable({ keepExistingData: false });
    } catch {
      throw new TscCrocError('ERR_NOT_WRITABLE', `cannot write ${displayName(this.#path)} in the chosen folder`);
    }
  }
  async write(data: Uint8Array): Promise<void> {
    await this.#file!.write(data as Uint8Array<ArrayBuffer>);
  }
  async commit(): Promise<void> {
    await this.#file!.close();
    this.#file = null;
  }
  async abort(): Promise<void> {
    await this.#file?.abort().catch(() => undefined);
    this.#file = null;
  }
}
