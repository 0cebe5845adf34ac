/**
 * What both peer implementations (the CLI's src/transfer/pake.ts and the page's src/web/pake.ts)
 * do with the key agreement's fields on the relay: decode one, and close the channel as
 * 'wrong-code' when a step fails the code (docs/protocol.md §4.8). No I/O of its own: the caller
 * passes what closes its channel.
 */
import { hexToBytes } from './assert.js';
import { TscCrocError, isTscCrocError } from './errors.js';
import type { PeerCloseReason } from './relay-api.js';

/** A PAKE field the relay returned, as bytes; absent or malformed: ERR_BAD_PAKE_MESSAGE. */
export function pakeFieldBytes(hex: string | null, name: string): Uint8Array {
  if (hex === null) throw new TscCrocError('ERR_BAD_PAKE_MESSAGE', `the relay returned no ${name}`);
  try {
    return hexToBytes(hex, name);
  } catch {
    throw new TscCrocError('ERR_BAD_PAKE_MESSAGE', `the other side sent a malformed ${name}`);
  }
}

/** Run `f`; if it fails the code (a wrong confirmation, a bad share), close the channel 'wrong-code' first. */
export async function closeOnWrongCode<T>(
  relay: { close(auth: { channel: string; uuid: string }, reason: PeerCloseReason): Promise<void> },
  auth: { channel: string; uuid: string },
  f: () => T,
): Promise<T> {
  try {
    return f();
  } catch (e) {
    if (isTscCrocError(e, 'ERR_WRONG_CODE') || isTscCrocError(e, 'ERR_BAD_PAKE_MESSAGE')) await relay.close(auth, 'wrong-code');
    throw e;
  }
}
