/**
 * Files and folders dropped on the send view. A dropped folder is walked through the File and
 * Directory Entries API (DataTransferItem.webkitGetAsEntry: Chromium, Firefox, Safari), each
 * directory read until its reader returns an empty batch; paths are the folder's name, then the
 * names below it joined by '/', exactly as `<input webkitdirectory>` gives them in
 * File.webkitRelativePath. Empty folders are kept (the folder input cannot give them). Bounded:
 * MAX_DROP_ENTRIES entries in all, MAX_DROP_DEPTH levels, MAX_READ_BATCHES batches per folder.
 */
import { TscCrocError } from '../core/errors.js';
import { MAX_OFFER_FILES } from '../core/messages.js';
import { displayName } from '../core/path.js';

/** What the user picked or dropped: files with their relative paths, and every folder (empty ones too). */
export interface Picked {
  files: { path: string; file: File }[];
  /** Folders to create, parents before children ('' never); may be empty (then they come from the paths). */
  dirs: string[];
}

export const MAX_DROP_ENTRIES = Math.min(MAX_OFFER_FILES, 200_000);
export const MAX_DROP_DEPTH = 64;
/** A reader gives its entries in batches (Chromium: 100 at a time); this bounds one folder's batches. */
const MAX_READ_BATCHES = MAX_DROP_ENTRIES;

/** Files the input elements picked (a folder pick keeps File.webkitRelativePath). */
export function fromFileList(list: FileList | readonly File[]): Picked {
  return { files: [...list].map((file) => ({ path: file.webkitRelativePath || file.name, file })), dirs: [] };
}

type Top = { kind: 'file'; file: File } | { kind: 'dir'; entry: FileSystemDirectoryEntry };

/**
 * What a drop holds. The items must be taken during the drop event (the browser empties the
 * DataTransfer after it), so this reads them at once and walks the folders afterwards.
 */
export function fromDrop(dt: DataTransfer): Promise<Picked> {
  const tops: Top[] = [];
  if (dt.items !== undefined && dt.items.length > 0) {
    for (const item of dt.items) {
      if (item.kind !== 'file') continue;
      const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
      if (entry !== null && entry.isDirectory) tops.push({ kind: 'dir', entry: entry as FileSystemDirectoryEntry });
      else {
        const file = item.getAsFile();
        if (file !== null) tops.push({ kind: 'file', file });
      }
    }
  } else for (const file of dt.files) tops.push({ kind: 'file', file });
  return walk(tops);
}

const unreadable = (what: string, e: unknown): TscCrocError =>
  new TscCrocError('ERR_IO', `cannot read ${displayName(what)} (${e instanceof DOMException ? e.name : 'error'})`);

function readBatch(reader: FileSystemDirectoryReader, path: string): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, (e) => reject(unreadable(path, e))));
}

function fileOf(entry: FileSystemFileEntry, path: string): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, (e) => reject(unreadable(path, e))));
}

async function walk(tops: Top[]): Promise<Picked> {
  const out: Picked = { files: [], dirs: [] };
  let count = 0;
  const counted = (): void => {
    if (++count > MAX_DROP_ENTRIES) throw new TscCrocError('ERR_INVALID_ARGUMENT', `more than ${MAX_DROP_ENTRIES} files and folders were dropped: send fewer at a time`);
  };
  // depth first, an explicit stack (no recursion limit); a folder's children in the reader's order
  for (const top of tops) {
    counted();
    if (top.kind === 'file') {
      out.files.push({ path: top.file.name, file: top.file });
      continue;
    }
    const stack: { entry: FileSystemDirectoryEntry; path: string; depth: number }[] = [{ entry: top.entry, path: top.entry.name, depth: 1 }];
    while (stack.length > 0) {
      const { entry, path, depth } = stack.pop()!;
      out.dirs.push(path);
      const reader = entry.createReader();
      const children: FileSystemEntry[] = [];
      for (let batch = 0; ; batch++) {
        if (batch >= MAX_READ_BATCHES) throw new TscCrocError('ERR_INVALID_ARGUMENT', `the folder ${displayName(path)} does not stop listing entries`);
        const got = await readBatch(reader, path);
        if (got.length === 0) break;
        for (const c of got) {
          counted();
          children.push(c);
        }
      }
      const subdirs: { entry: FileSystemDirectoryEntry; path: string; depth: number }[] = [];
      for (const c of children) {
        const p = `${path}/${c.name}`;
        if (c.isDirectory) {
          if (depth + 1 > MAX_DROP_DEPTH) throw new TscCrocError('ERR_INVALID_ARGUMENT', `the folder ${displayName(p)} is more than ${MAX_DROP_DEPTH} levels deep`);
          subdirs.push({ entry: c as FileSystemDirectoryEntry, path: p, depth: depth + 1 });
        } else if (c.isFile) out.files.push({ path: p, file: await fileOf(c as FileSystemFileEntry, p) });
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
  }
  return out;
}
