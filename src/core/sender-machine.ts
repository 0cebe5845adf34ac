/**
 * The sender's view of the recipient's messages as an explicit state machine
 * (docs/protocol.md §6). Pure; src/transfer/send.ts carries out the effects.
 */
import { TscCrocError } from './errors.js';
import type { HaveEntry, RecipientMessage } from './messages.js';
import { displayName } from './path.js';

export type SenderState =
  | { name: 'await-decision' }
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
  | { kind: 'start-sending' }
  | { kind: 'finish' };

export const initialSenderState: SenderState = { name: 'await-decision' };

function violation(what: string): never {
  throw new TscCrocError('ERR_PROTOCOL', `the recipient broke the protocol: ${what}`);
}

export function senderStep(state: SenderState, input: SenderInput): { state: SenderState; effects: SenderEffect[] } {
  if (input.kind === 'message' && input.message.type === 'error') {
    const { code, message } = input.message;
    if (code === 'ERR_CANCELLED') throw new TscCrocError('ERR_CANCELLED', 'cancelled by the recipient');
    throw new TscCrocError('ERR_PEER_ERROR', `the recipient failed: ${displayName(message)}`);
  }
  if (input.kind === 'data') return violation('the recipient sent file data');
  if (input.kind === 'message' && input.message.type === 'keepalive') return { state, effects: [] };
  if (input.kind === 'message' && input.message.type === 'have') {
    if (state.name !== 'await-decision') return violation('"have" after the offer was answered');
    return { state, effects: [{ kind: 'have', entries: input.message.entries }] };
  }
  switch (state.name) {
    case 'await-decision':
      if (input.kind !== 'message') return violation('ended before answering the offer');
      if (input.message.type === 'decline') throw new TscCrocError('ERR_DECLINED', 'the recipient declined the transfer');
      if (input.message.type !== 'accept') return violation(`unexpected "${input.message.type}"`);
      return { state: { name: 'sending' }, effects: [{ kind: 'start-sending' }] };
    case 'sending':
      if (input.kind === 'sent') return { state: { name: 'await-received' }, effects: [] };
      if (input.kind === 'end') throw new TscCrocError('ERR_CONNECTION_LOST', 'the recipient ended the transfer early');
      return violation(`unexpected "${input.message.type}" while sending`);
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
