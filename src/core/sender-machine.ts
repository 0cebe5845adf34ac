/**
 * The sender's view of the recipient's messages as an explicit state machine
 * (docs/protocol.md §6). Pure; src/transfer/send.ts carries out the effects.
 * What the recipient says before its accept (`have`, `skip`) is checked here against the offer.
 */
import { TscCrocError } from './errors.js';
import type { HaveEntry, OfferMessage, RecipientMessage } from './messages.js';
import { displayName } from './path.js';

/** What the recipient said before answering: the checks of `have` and `skip` need it all. */
interface Answer {
  offer: Pick<OfferMessage, 'kind' | 'totalFiles' | 'names'>;
  /** Paths of the `have` entries so far (each at most once, `totalFiles` in all). */
  havePaths: Set<string>;
  /** The names of its `skip`, or null before one came. */
  skipped: ReadonlySet<string> | null;
}

export type SenderState =
  | ({ name: 'await-decision' } & Answer)
  | { name: 'sending' }
  | { name: 'await-received' }
  | { name: 'await-end' }
  | { name: 'finished' };

export type SenderInput =
  | { kind: 'message'; message: RecipientMessage }
  | { kind: 'data' }
  | { kind: 'end' }
  /** Local: every file, "done" and END have been sent. */
  | { kind: 'sent' };

export type SenderEffect =
  /** What the recipient holds from an interrupted run; before its accept only. */
  | { kind: 'have'; entries: HaveEntry[] }
  /**
   * Start sending. `skipped`: the offered names the recipient keeps (its `skip`), left out; the
   * plan of what is sent instead goes first (protocol §6.1). Empty: everything, and no plan.
   */
  | { kind: 'start-sending'; skipped: string[] }
  | { kind: 'finish' };

/** The state after sending `offer`. */
export function senderStart(offer: Pick<OfferMessage, 'kind' | 'totalFiles' | 'names'>): SenderState {
  return { name: 'await-decision', offer, havePaths: new Set(), skipped: null };
}

function violation(what: string): never {
  throw new TscCrocError('ERR_PROTOCOL', `the recipient broke the protocol: ${what}`);
}

const quoted = (path: string) => JSON.stringify(displayName(path.length > 200 ? `${path.slice(0, 200)}...` : path));
const topName = (path: string) => path.split('/', 1)[0]!;

export function senderStep(state: SenderState, input: SenderInput): { state: SenderState; effects: SenderEffect[] } {
  if (input.kind === 'message' && input.message.type === 'error') {
    const { code, message } = input.message;
    if (code === 'ERR_CANCELLED') throw new TscCrocError('ERR_CANCELLED', 'cancelled by the recipient');
    throw new TscCrocError('ERR_PEER_ERROR', `the recipient failed: ${displayName(message)}`);
  }
  if (input.kind === 'data') return violation('the recipient sent file data');
  if (input.kind === 'message' && input.message.type === 'keepalive') return { state, effects: [] };
  switch (state.name) {
    case 'await-decision': {
      if (input.kind !== 'message') return violation('ended before answering the offer');
      const m = input.message;
      if (m.type === 'have') {
        if (state.offer.kind !== 'files') return violation(`"have" for a ${state.offer.kind}`);
        for (const h of m.entries) {
          if (state.havePaths.has(h.path)) violation(`"have" names ${quoted(h.path)} twice`);
          if (state.havePaths.size >= state.offer.totalFiles) violation(`more "have" entries than the ${state.offer.totalFiles} files offered`);
          if (state.skipped?.has(topName(h.path))) violation(`"have" for ${quoted(h.path)}, under a name it skipped`);
          state.havePaths.add(h.path);
        }
        return { state, effects: [{ kind: 'have', entries: m.entries }] };
      }
      if (m.type === 'skip') {
        if (state.offer.kind !== 'files') return violation(`"skip" for a ${state.offer.kind}`);
        if (state.skipped !== null) return violation('a second "skip"');
        const skipped = new Set(m.names);
        if (skipped.size !== m.names.length) violation('"skip" names a name twice');
        const offered = new Set(state.offer.names);
        for (const n of m.names) if (!offered.has(n)) violation(`"skip" names ${quoted(n)}, which was not offered`);
        for (const p of state.havePaths) if (skipped.has(topName(p))) violation(`"have" for ${quoted(p)}, under a name it skipped`);
        return { state: { ...state, skipped }, effects: [] };
      }
      if (m.type === 'decline') throw new TscCrocError('ERR_DECLINED', 'the recipient declined the transfer');
      if (m.type !== 'accept') return violation(`unexpected "${m.type}"`);
      // skipped names in offer order
      const skipped = state.skipped === null ? [] : state.offer.names.filter((n) => state.skipped!.has(n));
      return { state: { name: 'sending' }, effects: [{ kind: 'start-sending', skipped }] };
    }
    case 'sending':
      if (input.kind === 'sent') return { state: { name: 'await-received' }, effects: [] };
      if (input.kind === 'end') throw new TscCrocError('ERR_CONNECTION_LOST', 'the recipient ended the transfer early');
      return violation(`"${input.message.type}" after the offer was answered`);
    case 'await-received':
      if (input.kind !== 'message' || input.message.type !== 'received') return violation('expected "received"');
      return { state: { name: 'await-end' }, effects: [] };
    case 'await-end':
      if (input.kind !== 'end') return violation('sent more after "received"');
      return { state: { name: 'finished' }, effects: [{ kind: 'finish' }] };
    case 'finished':
      return violation('sent more after the end');
  }
}
