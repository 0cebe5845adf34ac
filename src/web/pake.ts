/**
 * SPAKE2 through the relay's channel fields (docs/protocol.md §4), as src/transfer/pake.ts does it
 * for the CLI, for one route (the page's relay): the same order, checks and words.
 */
import { bytesToHex, hexToBytes } from '../core/assert.js';
import { closeOnWrongCode, pakeFieldBytes } from '../core/pake-fields.js';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import { recipientRespond, senderStart, type HandshakeContext } from '../core/handshake.js';
import type { SessionKeys } from '../core/key-schedule.js';
import { derivePasswordScalar } from '../core/password.js';
import { DEFAULT_MAX_ATTEMPTS, type ChannelState, type JoinResponse } from '../core/relay-api.js';
import type { WebRelay } from './relay.js';

/** How long each side waits for the other's next step once both are there. */
export const STEP_MS = 60_000;
/** How long the sender waits for a recipient. */
export const WAIT_FOR_PEER_MS = 30 * 60_000;


export async function recipientPake(relay: WebRelay, join: JoinResponse, secret: string): Promise<SessionKeys> {
  const auth = { channel: join.channel, uuid: join.uuid };
  const ctx: HandshakeContext = { curve: join.curve, channel: join.channel };
  const [w, st] = await Promise.all([
    derivePasswordScalar(secret, ctx),
    relay.waitFor(auth, (s) => s.x !== null, STEP_MS, 'waiting for the sender', 'recipient'),
  ]);
  const hs = await closeOnWrongCode(relay, auth, () => recipientRespond(w, ctx, pakeFieldBytes(st.x, 'x')));
  await relay.channel({ ...auth, y: bytesToHex(hs.y), hh_k: bytesToHex(hs.hh_k) });
  const st2 = await relay.waitFor(auth, (s) => s.h_k !== null, STEP_MS, 'waiting for the sender to confirm the key', 'recipient');
  return closeOnWrongCode(relay, auth, () => hs.verify(pakeFieldBytes(st2.h_k, 'h_k')));
}

/**
 * The sender: post x, wait for a recipient's y and hh_k; a wrong confirmation rejects that
 * recipient (a fresh x for the next one) up to the relay's attempts, as the CLI does.
 */
export async function senderPake(relay: WebRelay, join: JoinResponse, secret: string, onFailedAttempt: (n: number, max: number) => void): Promise<SessionKeys> {
  const auth = { channel: join.channel, uuid: join.uuid };
  const ctx: HandshakeContext = { curve: join.curve, channel: join.channel };
  const w = await derivePasswordScalar(secret, ctx);
  const deadline = Date.now() + WAIT_FOR_PEER_MS;
  let failed = 0;
  let max = DEFAULT_MAX_ATTEMPTS;
  let seen = 0;
  for (let posts = 0; posts < 100; posts++) {
    const hs = senderStart(w, ctx);
    const x = bytesToHex(hs.x);
    let st: ChannelState = await relay.channel({ ...auth, x });
    const xVersion = st.version;
    for (;;) {
      max = Math.min(max, st.maxAttempts ?? 1);
      while (seen < (st.attempts ?? 0)) {
        seen++;
        failed++;
        onFailedAttempt(failed, max);
      }
      if (failed >= max) throw giveUp(failed, max);
      if (st.x === null && st.version > xVersion) break; // cleared: post a fresh x
      if (st.x === x && st.y !== null && st.hh_k !== null) {
        try {
          const done = hs.finish(pakeFieldBytes(st.y, 'y'), pakeFieldBytes(st.hh_k, 'hh_k'));
          await relay.channel({ ...auth, h_k: bytesToHex(done.h_k) });
          return done.keys;
        } catch (e) {
          if (!isTscCrocError(e, 'ERR_WRONG_CODE') && !isTscCrocError(e, 'ERR_BAD_PAKE_MESSAGE')) throw e;
          if (st.attempts === undefined || failed + 1 >= max) {
            failed++;
            onFailedAttempt(failed, max);
            await relay.close(auth, 'wrong-code');
            throw giveUp(failed, max);
          }
          st = await relay.channel({ ...auth, reject: true });
          continue;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new TscCrocError('ERR_TIMEOUT', 'timed out waiting for the recipient');
      const since = seen;
      st = await relay.waitFor(auth, (s) => (s.x === null && s.version > xVersion) || (s.x === x && s.y !== null && s.hh_k !== null) || (s.attempts ?? 0) > since, left, 'waiting for the recipient', 'sender');
    }
  }
  throw new TscCrocError('ERR_RELAY', 'the relay keeps clearing the key exchange');
}

function giveUp(failed: number, max: number): TscCrocError {
  return failed <= 1 && max <= 1
    ? new TscCrocError('ERR_WRONG_CODE', 'the code is wrong: the other side could not confirm the key')
    : new TscCrocError(
        'ERR_WRONG_CODE',
        `the code is wrong: ${failed} attempts failed key confirmation (the most allowed per code): the recipient mistyped it, or someone is guessing; send again for a new code`,
      );
}
