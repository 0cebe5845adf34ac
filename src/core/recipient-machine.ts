/**
 * The recipient's side of the transfer protocol as an explicit state machine (docs/protocol.md §6).
 * Pure: it decides, the I/O layer (src/transfer/receive.ts) carries out the effects in order.
 * Every count, size and path the sender sends is checked here against what it announced
 * before a byte touches the disk.
 */
import { TscCrocError } from './errors.js';
import type { FileMessage, OfferMessage, RecipientMessage, SenderMessage } from './messages.js';
import { checkRelativePath, displayName } from './path.js';

interface Totals {
  offer: OfferMessage;
  files: number;
  bytes: number;
  /**
   * Offered names not yet received. A ledger owned by one run of the machine: each file takes
   * its name out (O(1) per file), so a name can be written once and only if it was offered.
   */
  unreceived: Set<string>;
}

export type RecipientState =
  | { name: 'await-offer' }
  | { name: 'await-decision'; offer: OfferMessage }
  | ({ name: 'await-file' } & Totals)
  | ({ name: 'in-file'; file: FileMessage; segments: string[]; received: number } & Totals)
  | ({ name: 'await-end' } & Totals)
  | { name: 'finished' }
  | { name: 'declined' };

export type RecipientInput =
  | { kind: 'message'; message: SenderMessage }
  | { kind: 'data'; length: number }
  | { kind: 'end' }
  | { kind: 'decision'; accept: boolean };

export type RecipientEffect =
  | { kind: 'ask'; offer: OfferMessage }
  | { kind: 'send'; message: RecipientMessage }
  | { kind: 'open-file'; file: FileMessage; segments: string[] }
  | { kind: 'write' }
  | { kind: 'verify-file'; sha256: string }
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
  throw new TscCrocError('ERR_UNSAFE_PATH', `refused a file name from the sender: ${JSON.stringify(displayName(name))} is not a plain file name`);
}

/** The next state and its effects, or a typed error. Only the `unreceived` ledger is updated in place. */
export function recipientStep(state: RecipientState, input: RecipientInput): Step {
  if (input.kind === 'message' && input.message.type === 'error') {
    const { code, message } = input.message;
    if (code === 'ERR_CANCELLED') throw new TscCrocError('ERR_CANCELLED', 'cancelled by the sender');
    throw new TscCrocError('ERR_PEER_ERROR', `the sender failed: ${displayName(message)}`);
  }
  switch (state.name) {
    case 'await-offer': {
      if (input.kind !== 'message' || input.message.type !== 'offer') return violation('expected an offer first');
      const offer = input.message;
      if (offer.totalFiles < 1) violation('an offer of no files');
      // The recipient consents to these names: every one must be a single safe name (protocol v1
      // sends no folders), listed once, one per file.
      if (offer.names.length !== offer.totalFiles) violation(`an offer of ${offer.totalFiles} files that names ${offer.names.length}`);
      for (const n of offer.names) if (checkRelativePath(n).length !== 1) unsafeName(n);
      if (new Set(offer.names).size !== offer.names.length) violation('an offer that names a file twice');
      return { state: { name: 'await-decision', offer }, effects: [{ kind: 'ask', offer }] };
    }
    case 'await-decision': {
      if (input.kind !== 'decision') return violation('sent more before the offer was answered');
      if (!input.accept) return { state: { name: 'declined' }, effects: [{ kind: 'send', message: { type: 'decline' } }] };
      return {
        state: { name: 'await-file', offer: state.offer, files: 0, bytes: 0, unreceived: new Set(state.offer.names) },
        effects: [{ kind: 'send', message: { type: 'accept' } }],
      };
    }
    case 'await-file': {
      if (input.kind !== 'message') return violation(input.kind === 'data' ? 'data outside a file' : 'ended before "done"');
      const m = input.message;
      if (m.type === 'done') {
        if (state.files !== state.offer.totalFiles || state.bytes !== state.offer.totalBytes)
          violation(`sent ${state.files} files and ${state.bytes} bytes, but offered ${state.offer.totalFiles} and ${state.offer.totalBytes}`);
        return { state: { ...state, name: 'await-end' }, effects: [] };
      }
      if (m.type !== 'file') return violation(`unexpected "${m.type}"`);
      if (state.files + 1 > state.offer.totalFiles) violation('more files than offered');
      if (state.bytes + m.size > state.offer.totalBytes) violation('more bytes than offered');
      const segments = checkRelativePath(m.path);
      if (!state.unreceived.delete(m.path)) violation(`a file that was not offered (or sent twice): ${JSON.stringify(displayName(m.path))}`);
      return {
        state: { ...state, name: 'in-file', file: m, segments, received: 0 },
        effects: [{ kind: 'open-file', file: m, segments }],
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
        state: { ...totals, name: 'await-file', files: state.files + 1, bytes: state.bytes + state.file.size },
        effects: [{ kind: 'verify-file', sha256: input.message.sha256 }],
      };
    }
    case 'await-end': {
      if (input.kind !== 'end') return violation('sent more after "done"');
      return { state: { name: 'finished' }, effects: [{ kind: 'send', message: { type: 'received' } }, { kind: 'finish' }] };
    }
    case 'finished':
    case 'declined':
      return violation('sent more after the end');
  }
}
