/**
 * Control messages carried in MESSAGE records (docs/protocol.md §6), UTF-8 JSON, one per record.
 * Everything that arrives is hostile until `parseMessage` has checked its shape, types and
 * ranges; unknown types and unknown fields are refused.
 *
 * Sender → recipient:  offer; plan (only after a skip, right after the accept); then in any order:
 *                      dir (a folder), or file, DATA records, file-end (a file), or batch and one
 *                      DATA record (small files carried whole); then done; END.
 * Recipient → sender:  have* (what an earlier, interrupted run left) and skip? (names it keeps),
 *                      then accept | decline, then received (after every file is complete and
 *                      published); END.
 * Either side:         keepalive (any time; ignored), error (then END), which ends the transfer.
 */
import { TscCrocError } from './errors.js';
import { fromUtf8, utf8 } from './utf8.js';

/** 3: the `batch` message (several small files whole in one DATA record). 2 had no batch. */
export const PROTOCOL_VERSION = 3;
/**
 * Most top-level names one offer may list. The offer lists every top-level file and folder
 * (what the sender named on its command line), so that the recipient consents to exactly the
 * names that appear in its folder; every path that follows must lie under one of them.
 */
export const MAX_OFFER_NAMES = 2048;
/**
 * Sanity limits of one offer (docs/protocol.md §6): a recipient refuses an offer beyond them before
 * it asks its user or writes anything, so a hostile sender cannot make it hold a million-entry
 * ledger or create folders without end. Far above any real transfer (the sender's own walk of
 * 10^6 files takes minutes); a sender with more sends them in several transfers.
 */
export const MAX_OFFER_FILES = 1_000_000;
export const MAX_OFFER_DIRS = 1_000_000;
/** 2^50 bytes (1 PiB). */
export const MAX_OFFER_BYTES = 2 ** 50;
const MAX_PATH_CHARS = 4096;
const MAX_NAME_CHARS = 255;
const MAX_MESSAGE_TEXT = 1024;
/** The largest time a Date can hold, in ms since the epoch. */
const MAX_MTIME = 8.64e15;

/** What an offer holds: files and folders, a text message, or a stream of unknown length (a pipe). */
export const OFFER_KINDS = ['files', 'text', 'stream'] as const;
export type OfferKind = (typeof OFFER_KINDS)[number];
/** Largest text message: it is held in memory and printed. */
export const MAX_TEXT_BYTES = 1024 * 1024;

export interface OfferMessage {
  type: 'offer';
  v: number;
  kind: OfferKind;
  totalFiles: number;
  /** Folders that follow as `dir` messages (each folder once, empty ones included). */
  totalDirs: number;
  totalBytes: number;
  /**
   * kind 'files': the top-level names (single segments), every path that follows starts with one
   * of them. 'text' and 'stream': empty.
   */
  names: string[];
}
/** After the DATA of a text or stream offer: how much was sent, and its SHA-256. */
export interface StreamEndMessage {
  type: 'stream-end';
  size: number;
  sha256: string;
}
export interface DirMessage {
  type: 'dir';
  /** Relative path, '/'-separated, under an offered name; checked like file paths. */
  path: string;
  mode: number;
  mtime: number;
}
export interface FileMessage {
  type: 'file';
  /** Relative path, '/'-separated; checked by src/core/path.ts before any use. */
  path: string;
  size: number;
  /**
   * Where the DATA starts: 0, or the offset of a `have` entry for this path whose prefix the
   * sender found equal to its own (the recipient keeps those bytes). `size` when nothing follows.
   */
  offset: number;
  /** Permission bits (0..0o777). */
  mode: number;
  /** Modification time, ms since the epoch. */
  mtime: number;
}
/**
 * The file's data is complete. It carries no digest (since protocol v2): every byte came in
 * authenticated, ordered records, and the count is checked against the announced size
 * (docs/protocol.md §6.3).
 */
export interface FileEndMessage {
  type: 'file-end';
}
/** Most files in one `batch` message. */
export const MAX_BATCH_FILES = 1024;
/** Most bytes of one batch's files together: they travel in one DATA record (the largest payload, 1 MiB). */
export const MAX_BATCH_BYTES = 1024 * 1024;
/** A file carried whole in a batch: what a `file` message says, less `offset` (always 0). */
export interface BatchEntry {
  path: string;
  size: number;
  mode: number;
  mtime: number;
}
/**
 * Several small files carried whole (protocol v3): exactly one DATA record follows, holding
 * their bytes one after the other in this order, as many bytes as their sizes add up to. No
 * `file-end`: the record is authenticated and its length is checked before a byte is written.
 */
export interface BatchMessage {
  type: 'batch';
  files: BatchEntry[];
}
/** Most entries in one `have` message (each is at most ~4.2 KB, a record at most 1 MiB). */
export const MAX_HAVE_ENTRIES = 200;
/**
 * What the recipient already holds of a file from an interrupted run: the first `offset` bytes,
 * with the digest of that prefix (src/core/chunk-digest.ts). `whole`: it is a complete file of
 * `offset` bytes (usable only if the sender's file still has that size), not a partial one.
 */
export interface HaveEntry {
  path: string;
  offset: number;
  digest: string;
  whole: boolean;
}
/** Sent before `accept`, as many as needed. */
export interface HaveMessage {
  type: 'have';
  entries: HaveEntry[];
}
/**
 * Top-level names of the offer that the recipient keeps as they are (its user chose not to
 * replace them): the sender leaves out everything under them. Kind 'files' only, before
 * `accept`, at most one per transfer; each name once.
 */
export interface SkipMessage {
  type: 'skip';
  names: string[];
}
/**
 * The sender's answer to a `skip`, right after the `accept` and before anything else: what it
 * will send now that the skipped names are left out. Each total is at most the offer's, and the
 * recipient holds the sender to these exactly, as it would to the offer's.
 */
export interface PlanMessage {
  type: 'plan';
  totalFiles: number;
  totalDirs: number;
  totalBytes: number;
}
export interface DoneMessage {
  type: 'done';
}
export interface AcceptMessage {
  type: 'accept';
}
export interface DeclineMessage {
  type: 'decline';
}
export interface ReceivedMessage {
  type: 'received';
}
/**
 * Sent by either side when it has sent nothing else for a while (src/transfer/secure-channel.ts),
 * so that neither the relay's idle timeout nor the other side's stall check cuts a connection
 * that is alive, e.g. while a person decides on the offer. Carries nothing; ignored on arrival.
 */
export interface KeepaliveMessage {
  type: 'keepalive';
}
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}

export type SenderMessage = OfferMessage | PlanMessage | DirMessage | FileMessage | BatchMessage | FileEndMessage | StreamEndMessage | DoneMessage | KeepaliveMessage | ErrorMessage;
export type RecipientMessage = HaveMessage | SkipMessage | AcceptMessage | DeclineMessage | ReceivedMessage | KeepaliveMessage | ErrorMessage;
export type Message = SenderMessage | RecipientMessage;

export function encodeMessage(m: Message): Uint8Array {
  return utf8(JSON.stringify(m));
}

type Fields = Record<string, unknown>;

function bad(what: string): never {
  throw new TscCrocError('ERR_PROTOCOL', `malformed message from the other side: ${what}`);
}

/**
 * Exactly these keys. `what` names the object in the error ("'offer'", "a 'have' entry"): the
 * first missing key is named, else the first extra one (made safe to show, and cut short).
 */
function exactKeys(o: Fields, keys: readonly string[], what = `'${String(o.type)}'`): void {
  const got = Object.keys(o);
  const missing = keys.find((k) => !Object.hasOwn(o, k));
  if (missing !== undefined) bad(`${what} lacks '${missing}'`);
  const extra = got.find((k) => !keys.includes(k));
  if (extra !== undefined) bad(`${what} has an unexpected field ${JSON.stringify(extra.slice(0, 32)).replace(/[^\x20-\x7e]/g, '?')}`);
}

function uint(o: Fields, k: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) bad(`'${k}' must be an integer in [0, ${max}]`);
  return v;
}

function str(o: Fields, k: string, max: number): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) bad(`'${k}' must be a string of 1..${max} characters`);
  return v;
}

const BATCH_KEYS = ['path', 'size', 'mode', 'mtime'] as const;

/** Exactly the keys of a batch entry (the fast check; exactKeys names what is wrong). */
function batchKeys(o: Fields): boolean {
  let n = 0;
  for (const k in o) {
    if (!Object.hasOwn(o, k) || (k !== 'path' && k !== 'size' && k !== 'mode' && k !== 'mtime')) return false;
    n++;
  }
  return n === 4;
}

const SHA256_RE = /^[0-9a-f]{64}$/;

function hex64(o: Fields, k: string): string {
  const v = str(o, k, 64);
  if (!SHA256_RE.test(v)) bad(`'${k}' must be 64 lowercase hex digits`);
  return v;
}

/** Parse and check a message's JSON. `from` says which side sent it; the other side's types are refused. */
export function parseMessage(payload: Uint8Array, from: 'sender'): SenderMessage;
export function parseMessage(payload: Uint8Array, from: 'recipient'): RecipientMessage;
export function parseMessage(payload: Uint8Array, from: 'sender' | 'recipient'): Message;
export function parseMessage(payload: Uint8Array, from: 'sender' | 'recipient'): Message {
  let o: unknown;
  try {
    o = JSON.parse(fromUtf8(payload));
  } catch {
    bad('not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('not an object');
  const m = o as Fields;
  const type = m.type;
  const senderTypes = ['offer', 'plan', 'dir', 'file', 'batch', 'file-end', 'stream-end', 'done', 'keepalive', 'error'];
  const recipientTypes = ['have', 'skip', 'accept', 'decline', 'received', 'keepalive', 'error'];
  if (typeof type !== 'string' || !(from === 'sender' ? senderTypes : recipientTypes).includes(type))
    bad(`unexpected message type from the ${from}`);
  switch (type) {
    case 'offer': {
      exactKeys(m, ['type', 'v', 'kind', 'totalFiles', 'totalDirs', 'totalBytes', 'names']);
      if (!(OFFER_KINDS as readonly unknown[]).includes(m.kind)) bad("unknown 'kind'");
      if (m.v !== PROTOCOL_VERSION) bad(`unsupported protocol version ${String(m.v)}`);
      const names = m.names;
      if (!Array.isArray(names) || names.length > MAX_OFFER_NAMES) bad(`'names' must be a list of at most ${MAX_OFFER_NAMES}`);
      for (const n of names) if (typeof n !== 'string' || n.length === 0 || n.length > MAX_NAME_CHARS) bad("'names' entries must be strings");
      return {
        type,
        v: PROTOCOL_VERSION,
        kind: m.kind as OfferKind,
        totalFiles: uint(m, 'totalFiles'),
        totalDirs: uint(m, 'totalDirs'),
        totalBytes: uint(m, 'totalBytes'),
        names: names as string[],
      };
    }
    case 'dir':
      exactKeys(m, ['type', 'path', 'mode', 'mtime']);
      return { type, path: str(m, 'path', MAX_PATH_CHARS), mode: uint(m, 'mode', 0o777), mtime: uint(m, 'mtime', MAX_MTIME) };
    case 'file': {
      exactKeys(m, ['type', 'path', 'size', 'offset', 'mode', 'mtime']);
      const size = uint(m, 'size');
      const offset = uint(m, 'offset', size);
      return { type, path: str(m, 'path', MAX_PATH_CHARS), size, offset, mode: uint(m, 'mode', 0o777), mtime: uint(m, 'mtime', MAX_MTIME) };
    }
    case 'batch': {
      exactKeys(m, ['type', 'files']);
      const files = m.files;
      if (!Array.isArray(files) || files.length < 1 || files.length > MAX_BATCH_FILES) bad(`'files' must be a list of 1..${MAX_BATCH_FILES}`);
      let sum = 0;
      // each entry is checked in place and kept as parsed (exactly its four keys): a batch of
      // 1024 entries allocates nothing more
      for (let i = 0; i < files.length; i++) {
        const e: unknown = files[i];
        if (typeof e !== 'object' || e === null || Array.isArray(e)) bad("'files' must hold objects");
        const o = e as Fields;
        if (!batchKeys(o)) exactKeys(o, BATCH_KEYS, "a 'batch' entry");
        const size = uint(o, 'size', MAX_BATCH_BYTES);
        sum += size;
        if (sum > MAX_BATCH_BYTES) bad(`a batch of more than ${MAX_BATCH_BYTES} bytes`);
        str(o, 'path', MAX_PATH_CHARS);
        uint(o, 'mode', 0o777);
        uint(o, 'mtime', MAX_MTIME);
      }
      return { type, files: files as BatchEntry[] };
    }
    case 'have': {
      exactKeys(m, ['type', 'entries']);
      const entries = m.entries;
      if (!Array.isArray(entries) || entries.length < 1 || entries.length > MAX_HAVE_ENTRIES) bad(`'entries' must be a list of 1..${MAX_HAVE_ENTRIES}`);
      return {
        type,
        entries: entries.map((e: unknown) => {
          if (typeof e !== 'object' || e === null || Array.isArray(e)) bad("'entries' must hold objects");
          const o = e as Fields;
          exactKeys(o, ['path', 'offset', 'digest', 'whole'], "a 'have' entry");
          if (typeof o.whole !== 'boolean') bad("'whole' must be true or false");
          return { path: str(o, 'path', MAX_PATH_CHARS), offset: uint(o, 'offset'), digest: hex64(o, 'digest'), whole: o.whole };
        }),
      };
    }
    case 'skip': {
      exactKeys(m, ['type', 'names']);
      const names = m.names;
      if (!Array.isArray(names) || names.length < 1 || names.length > MAX_OFFER_NAMES) bad(`'names' must be a list of 1..${MAX_OFFER_NAMES}`);
      for (const n of names) if (typeof n !== 'string' || n.length === 0 || n.length > MAX_NAME_CHARS) bad(`'names' entries must be strings of 1..${MAX_NAME_CHARS} characters`);
      return { type, names: names as string[] };
    }
    case 'plan':
      exactKeys(m, ['type', 'totalFiles', 'totalDirs', 'totalBytes']);
      return { type, totalFiles: uint(m, 'totalFiles'), totalDirs: uint(m, 'totalDirs'), totalBytes: uint(m, 'totalBytes') };
    case 'stream-end':
      exactKeys(m, ['type', 'size', 'sha256']);
      return { type, size: uint(m, 'size'), sha256: hex64(m, 'sha256') };
    case 'error':
      exactKeys(m, ['type', 'code', 'message']);
      return { type, code: str(m, 'code', 64), message: str(m, 'message', MAX_MESSAGE_TEXT) };
    default:
      exactKeys(m, ['type']);
      return { type } as DoneMessage | FileEndMessage | AcceptMessage | DeclineMessage | ReceivedMessage | KeepaliveMessage;
  }
}
