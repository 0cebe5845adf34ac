/**
 * The recipient's side of the transfer protocol as an explicit state machine (docs/protocol.md §6).
 * Pure: it decides, the I/O layer (src/transfer/receive.ts) carries out the effects in order.
 * Every count, size and path the sender sends is checked here against what it announced, and
 * against what the user accepted, before a byte touches the disk: each path must be safe and
 * lie under one of the offered top-level names, and is written at most once.
 */
import { TscCrocError } from './errors.js';
import { MAX_HAVE_ENTRIES, MAX_OFFER_BYTES, MAX_OFFER_DIRS, MAX_OFFER_FILES, MAX_TEXT_BYTES, type BatchEntry, type DirMessage, type HaveEntry, type FileMessage, type OfferMessage, type PlanMessage, type RecipientMessage, type SenderMessage } from './messages.js';
import { checkRelativePath, displayName } from './path.js';

/** What the sender must send in all: the offer's totals, or those of its `plan` after a `skip`. */
type Limits = Pick<OfferMessage, 'totalFiles' | 'totalDirs' | 'totalBytes'>;

interface Totals {
  offer: OfferMessage;
  /** The totals the sender is held to: the offer's, or its plan's once names were skipped. */
  want: Limits;
  /** 'offered', or 'planned' after a plan: how the totals are named in errors. */
  wantWord: 'offered' | 'planned';
  files: number;
  dirs: number;
  bytes: number;
  /** The offered top-level names. */
  roots: ReadonlySet<string>;
  /** Offered names we keep as they are (`skip`): nothing under them may come. */
  skipped: ReadonlySet<string>;
  /**
   * Paths already written. A ledger owned by one run of the machine, updated in place (O(1) per
   * entry, so 100,000 files stay linear): nothing is written twice.
   */
  seen: Set<string>;
  /** Folders announced by `dir` messages: the only parents a path may have below its top-level name. */
  folders: Set<string>;
  /** What we said we hold (`have`): the only offsets, besides 0, a file may start at (a whole file: only at its size). */
  held: ReadonlyMap<string, { offset: number; whole: boolean }>;
}

export type RecipientState =
  | { name: 'await-offer' }
  | { name: 'await-decision'; offer: OfferMessage }
  /** We sent `skip`: the sender's `plan` comes first. */
  | ({ name: 'await-plan' } & Totals)
  | ({ name: 'await-entry' } & Totals)
  | ({ name: 'in-file'; file: FileMessage; segments: string[]; received: number } & Totals)
  /** A `batch` was admitted: its one DATA record, of exactly `batchBytes` bytes, comes next. */
  | ({ name: 'in-batch'; batch: BatchEntry[]; batchSegments: string[][]; batchBytes: number } & Totals)
  /** A text or stream offer: its DATA, up to `stream-end`. */
  | ({ name: 'in-stream'; received: number } & Totals)
  | ({ name: 'await-end' } & Totals)
  | { name: 'finished' }
  | { name: 'declined' };

export type RecipientInput =
  | { kind: 'message'; message: SenderMessage }
  | { kind: 'data'; length: number }
  | { kind: 'end' }
  /**
   * `have`: what an interrupted run left, to be told to the sender with the accept. `skip`:
   * offered top-level names to keep as they are (kind 'files'): the sender leaves them out, and
   * `have` entries under them are not sent.
   */
  | { kind: 'decision'; accept: boolean; have?: readonly HaveEntry[]; skip?: readonly string[] };

export type RecipientEffect =
  | { kind: 'ask'; offer: OfferMessage }
  /** The sender's plan after our skip: what will come in all (for progress). */
  | { kind: 'plan'; plan: Limits }
  | { kind: 'send'; message: RecipientMessage }
  | { kind: 'make-dir'; dir: DirMessage; segments: string[] }
  | { kind: 'open-file'; file: FileMessage; segments: string[] }
  | { kind: 'write' }
  /** The file's bytes are all in (as many as announced): make it durable and publish it. */
  | { kind: 'commit-file' }
  /**
   * A batch's DATA record, authenticated and of exactly the announced length: write its files
   * (each `files[i].size` bytes of the record, in order) and publish them.
   */
  | { kind: 'write-batch'; files: BatchEntry[]; segments: string[][] }
  /** The DATA of a text or stream goes to the stream sink. */
  | { kind: 'write-stream' }
  | { kind: 'verify-stream'; sha256: string }
  /** Every file is in: give folders their modes and times (deepest first). */
  | { kind: 'finish-dirs' }
  | { kind: 'finish' };

export interface Step {
  state: RecipientState;
  effects: RecipientEffect[];
}

export const initialRecipientState: RecipientState = { name: 'await-offer' };

function violation(what: string): never {
  throw new TscCrocError('ERR_PROTOCOL', `the sender broke the protocol: ${what}`);
}

function unsafeName(name: string): never {
  throw new TscCrocError('ERR_UNSAFE_PATH', `refused a name from the sender: ${JSON.stringify(displayName(name))} is not a plain file or folder name`);
}

/**
 * Check a path of a `dir` or `file` message against the offer; returns its segments. Below its
 * top-level name, a path's parent must be a folder announced earlier, so the folders created are
 * exactly the `totalDirs` the user saw, and depth costs nothing it was not offered.
 */
function admit(state: Totals, path: string, isDir: boolean): string[] {
  const segments = checkRelativePath(path);
  if (state.skipped.has(segments[0]!)) violation(`${JSON.stringify(displayName(path))} is under a name we skipped`);
  if (!state.roots.has(segments[0]!)) violation(`${JSON.stringify(displayName(path))} is not under an offered name`);
  if (state.seen.has(path)) violation(`${JSON.stringify(displayName(path))} sent twice`);
  if (segments.length > 1 && !state.folders.has(path.slice(0, path.lastIndexOf('/'))))
    violation(`${JSON.stringify(displayName(path))} comes before its folder`);
  state.seen.add(path);
  if (isDir) state.folders.add(path);
  return segments;
}

/** The next state and its effects, or a typed error. Only the `seen` ledger is updated in place. */
export function recipientStep(state: RecipientState, input: RecipientInput): Step {
  if (input.kind === 'message' && input.message.type === 'keepalive') return { state, effects: [] };
  if (input.kind === 'message' && input.message.type === 'error') {
    const { code, message } = input.message;
    if (code === 'ERR_CANCELLED') throw new TscCrocError('ERR_CANCELLED', 'cancelled by the sender');
    throw new TscCrocError('ERR_PEER_ERROR', `the sender failed: ${displayName(message)}`);
  }
  switch (state.name) {
    case 'await-offer': {
      if (input.kind !== 'message' || input.message.type !== 'offer') return violation('expected an offer first');
      const offer = input.message;
      if (offer.kind !== 'files') {
        if (offer.totalFiles !== 0 || offer.totalDirs !== 0 || offer.names.length !== 0) violation(`a ${offer.kind} offer with files`);
        if (offer.kind === 'text' && offer.totalBytes > MAX_TEXT_BYTES) violation(`a text of more than ${MAX_TEXT_BYTES} bytes`);
        if (offer.kind === 'stream' && offer.totalBytes !== 0) violation('a stream offer with a size');
        return { state: { name: 'await-decision', offer }, effects: [{ kind: 'ask', offer }] };
      }
      if (offer.totalFiles + offer.totalDirs < 1) violation('an offer of nothing');
      // sanity limits (docs/protocol.md §6), before the user is asked or anything is written
      if (offer.totalFiles > MAX_OFFER_FILES) violation(`an offer of ${offer.totalFiles} files, more than the ${MAX_OFFER_FILES} one transfer may hold`);
      if (offer.totalDirs > MAX_OFFER_DIRS) violation(`an offer of ${offer.totalDirs} folders, more than the ${MAX_OFFER_DIRS} one transfer may hold`);
      if (offer.totalBytes > MAX_OFFER_BYTES) violation(`an offer of ${offer.totalBytes} bytes, more than the ${MAX_OFFER_BYTES} (1 PiB) one transfer may hold`);
      // The user consents to these names: each a single safe name, listed once.
      if (offer.names.length < 1) violation('an offer without names');
      for (const n of offer.names) if (checkRelativePath(n).length !== 1) unsafeName(n);
      if (new Set(offer.names).size !== offer.names.length) violation('an offer that lists a name twice');
      return { state: { name: 'await-decision', offer }, effects: [{ kind: 'ask', offer }] };
    }
    case 'await-decision': {
      if (input.kind !== 'decision') return violation('sent more before the offer was answered');
      if (!input.accept) return { state: { name: 'declined' }, effects: [{ kind: 'send', message: { type: 'decline' } }] };
      const files = state.offer.kind === 'files';
      const skip = files ? [...(input.skip ?? [])] : [];
      const skipped = new Set(skip);
      // our own caller's mistake, not the sender's: a skip of a name not offered, or twice
      if (skipped.size !== skip.length || skip.some((n) => !state.offer.names.includes(n)))
        throw new TypeError('decision.skip: each name at most once, and only offered names');
      // nothing held under a skipped name is announced: it is not sent
      const have = (files ? (input.have ?? []) : []).filter((h) => !skipped.has(h.path.split('/', 1)[0]!));
      const held = new Map(have.map((h) => [h.path, { offset: h.offset, whole: h.whole }]));
      const { totalFiles, totalDirs, totalBytes } = state.offer;
      const totals: Totals = {
        offer: state.offer,
        want: { totalFiles, totalDirs, totalBytes },
        wantWord: 'offered',
        files: 0,
        dirs: 0,
        bytes: 0,
        roots: new Set(state.offer.names),
        skipped,
        seen: new Set(),
        folders: new Set(),
        held,
      };
      const next: RecipientState = !files ? { name: 'in-stream', received: 0, ...totals } : skip.length > 0 ? { name: 'await-plan', ...totals } : { name: 'await-entry', ...totals };
      const effects: RecipientEffect[] = [];
      for (let i = 0; i < have.length; i += MAX_HAVE_ENTRIES) effects.push({ kind: 'send', message: { type: 'have', entries: have.slice(i, i + MAX_HAVE_ENTRIES) } });
      if (skip.length > 0) effects.push({ kind: 'send', message: { type: 'skip', names: skip } });
      effects.push({ kind: 'send', message: { type: 'accept' } });
      return { state: next, effects };
    }
    case 'await-plan': {
      if (input.kind !== 'message' || input.message.type !== 'plan') return violation('expected "plan" after our "skip"');
      const p: PlanMessage = input.message;
      const w = state.want;
      if (p.totalFiles > w.totalFiles || p.totalDirs > w.totalDirs || p.totalBytes > w.totalBytes)
        violation(`planned ${p.totalFiles} files, ${p.totalDirs} folders and ${p.totalBytes} bytes, more than the ${w.totalFiles}, ${w.totalDirs} and ${w.totalBytes} offered`);
      const want = { totalFiles: p.totalFiles, totalDirs: p.totalDirs, totalBytes: p.totalBytes };
      return { state: { ...state, name: 'await-entry', want, wantWord: 'planned' }, effects: [{ kind: 'plan', plan: want }] };
    }
    case 'in-stream': {
      if (input.kind === 'data') {
        const received = state.received + input.length;
        // a text has a size; a stream (a pipe) has none, like any pipe
        if (state.offer.kind === 'text' && received > state.offer.totalBytes) violation('more text than announced');
        return { state: { ...state, received }, effects: [{ kind: 'write-stream' }] };
      }
      if (input.kind !== 'message' || input.message.type !== 'stream-end') return violation('a stream was cut short');
      const { size, sha256 } = input.message;
      if (size !== state.received) violation(`a stream of ${state.received} bytes announced as ${size}`);
      if (state.offer.kind === 'text' && size !== state.offer.totalBytes) violation(`a text of ${size} bytes offered as ${state.offer.totalBytes}`);
      const { received: _r, ...totals } = state;
      return { state: { ...totals, name: 'await-entry', bytes: size }, effects: [{ kind: 'verify-stream', sha256 }] };
    }
    case 'await-entry': {
      if (input.kind !== 'message') return violation(input.kind === 'data' ? 'data outside a file' : 'ended before "done"');
      const m = input.message;
      if (m.type === 'done') {
        const o = state.want;
        const bytesOk = state.offer.kind === 'stream' || state.bytes === o.totalBytes;
        if (state.files !== o.totalFiles || state.dirs !== o.totalDirs || !bytesOk)
          violation(
            `sent ${state.files} files, ${state.dirs} folders and ${state.bytes} bytes, but ${state.wantWord} ${o.totalFiles}, ${o.totalDirs} and ${o.totalBytes}`,
          );
        return { state: { ...state, name: 'await-end' }, effects: [] };
      }
      if (state.offer.kind !== 'files') return violation(`"${m.type}" in a ${state.offer.kind} transfer`);
      if (m.type === 'dir') {
        if (state.dirs + 1 > state.want.totalDirs) violation(`more folders than ${state.wantWord}`);
        const segments = admit(state, m.path, true);
        return { state: { ...state, dirs: state.dirs + 1 }, effects: [{ kind: 'make-dir', dir: m, segments }] };
      }
      if (m.type === 'batch') {
        // every count, size and path of the batch is checked before its data is even read
        const n = m.files.length;
        if (state.files + n > state.want.totalFiles) violation(`more files than ${state.wantWord}`);
        let sum = 0;
        for (const f of m.files) sum += f.size;
        if (state.bytes + sum > state.want.totalBytes) violation(`more bytes than ${state.wantWord}`);
        const batchSegments: string[][] = new Array(n);
        for (let i = 0; i < n; i++) batchSegments[i] = admit(state, m.files[i]!.path, false);
        return { state: { ...state, name: 'in-batch', batch: m.files, batchSegments, batchBytes: sum }, effects: [] };
      }
      if (m.type !== 'file') return violation(`unexpected "${m.type}"`);
      if (state.files + 1 > state.want.totalFiles) violation(`more files than ${state.wantWord}`);
      if (state.bytes + m.size > state.want.totalBytes) violation(`more bytes than ${state.wantWord}`);
      // a file starts at 0, or where we said we hold it up to (those bytes are ours already)
      if (m.offset !== 0) {
        const h = state.held.get(m.path);
        if (h === undefined || h.offset !== m.offset) violation(`${JSON.stringify(displayName(m.path))} starts at ${m.offset}, which we did not offer to resume from`);
        if (h.whole && m.size !== h.offset) violation(`${JSON.stringify(displayName(m.path))} continues a whole file we hold, at another size`);
      }
      const segments = admit(state, m.path, false);
      return {
        state: { ...state, name: 'in-file', file: m, segments, received: m.offset },
        effects: [{ kind: 'open-file', file: m, segments }],
      };
    }
    case 'in-batch': {
      if (input.kind !== 'data') return violation('a batch without its data');
      if (input.length !== state.batchBytes) violation(`a batch of ${state.batchBytes} bytes carried ${input.length}`);
      const { batch, batchSegments, batchBytes, ...totals } = state;
      return {
        state: { ...totals, name: 'await-entry', files: state.files + batch.length, bytes: state.bytes + batchBytes },
        effects: [{ kind: 'write-batch', files: batch, segments: batchSegments }],
      };
    }
    case 'in-file': {
      if (input.kind === 'data') {
        const received = state.received + input.length;
        if (received > state.file.size) violation(`more data than the ${state.file.size} bytes announced for a file`);
        return { state: { ...state, received }, effects: [{ kind: 'write' }] };
      }
      if (input.kind !== 'message' || input.message.type !== 'file-end') return violation('a file was cut short');
      if (state.received !== state.file.size) violation(`a file ended after ${state.received} of ${state.file.size} bytes`);
      const { file: _f, segments: _s, received: _r, ...totals } = state;
      return {
        state: { ...totals, name: 'await-entry', files: state.files + 1, bytes: state.bytes + state.file.size },
        effects: [{ kind: 'commit-file' }],
      };
    }
    case 'await-end': {
      if (input.kind !== 'end') return violation('sent more after "done"');
      return {
        state: { name: 'finished' },
        effects: [{ kind: 'finish-dirs' }, { kind: 'send', message: { type: 'received' } }, { kind: 'finish' }],
      };
    }
    case 'finished':
    case 'declined':
      return violation('sent more after the end');
  }
}
