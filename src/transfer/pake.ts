/**
 * SPAKE2 through the relay's channel fields (docs/protocol.md §4), for each role:
 * the sender posts x; the recipient posts y with hh_k (its confirmation); the sender checks it
 * and only then posts h_k (its own); the recipient checks that. A side that finds a wrong
 * confirmation closes the channel with reason "wrong-code" and never reveals its own MAC, so
 * neither side learns anything it could test other codes against offline.
 */
import { bytesToHex, hexToBytes } from '../core/assert.js';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import { recipientRespond, senderStart, type HandshakeContext } from '../core/handshake.js';
import type { SessionKeys } from '../core/key-schedule.js';
import { derivePasswordScalar } from '../core/password.js';
import type { JoinResponse } from '../core/relay-api.js';
import type { RelayClient } from './relay-client.js';

export interface PakeTimeouts {
  /** How long the sender waits for a recipient to show up. */
  waitForPeerMs: number;
  /** How long each side waits for the other's next step once both are there. */
  stepMs: number;
}

function peerBytes(hex: string | null, name: string): Uint8Array {
  if (hex === null) throw new TscCrocError('ERR_BAD_PAKE_MESSAGE', `the relay returned no ${name}`);
  try {
    return hexToBytes(hex, name);
  } catch {
    throw new TscCrocError('ERR_BAD_PAKE_MESSAGE', `the other side sent a malformed ${name}`);
  }
}

async function closeOnWrongCode<T>(client: RelayClient, auth: { channel: string; uuid: string }, f: () => T): Promise<T> {
  try {
    return f();
  } catch (e) {
    if (isTscCrocError(e, 'ERR_WRONG_CODE') || isTscCrocError(e, 'ERR_BAD_PAKE_MESSAGE')) await client.close(auth, 'wrong-code');
    throw e;
  }
}

export async function senderPake(
  client: RelayClient,
  join: JoinResponse,
  secret: string,
  timeouts: PakeTimeouts,
  onWaiting: () => void,
): Promise<SessionKeys> {
  const auth = { channel: join.channel, uuid: join.uuid };
  const ctx: HandshakeContext = { curve: join.curve, channel: join.channel };
  const hs = senderStart(await derivePasswordScalar(secret, ctx), ctx);
  await client.channel({ ...auth, x: bytesToHex(hs.x) });
  onWaiting();
  const st = await client.waitFor(auth, (s) => s.y !== null && s.hh_k !== null, timeouts.waitForPeerMs, 'waiting for the recipient');
  const y = peerBytes(st.y, 'y');
  const hh_k = peerBytes(st.hh_k, 'hh_k');
  const { h_k, keys } = await closeOnWrongCode(client, auth, () => hs.finish(y, hh_k));
  await client.channel({ ...auth, h_k: bytesToHex(h_k) });
  return keys;
}

export async function recipientPake(client: RelayClient, join: JoinResponse, secret: string, timeouts: PakeTimeouts): Promise<SessionKeys> {
  const auth = { channel: join.channel, uuid: join.uuid };
  const ctx: HandshakeContext = { curve: join.curve, channel: join.channel };
  const w = await derivePasswordScalar(secret, ctx);
  const st = await client.waitFor(auth, (s) => s.x !== null, timeouts.stepMs, 'waiting for the sender');
  const x = peerBytes(st.x, 'x');
  const hs = await closeOnWrongCode(client, auth, () => recipientRespond(w, ctx, x));
  await client.channel({ ...auth, y: bytesToHex(hs.y), hh_k: bytesToHex(hs.hh_k) });
  const st2 = await client.waitFor(auth, (s) => s.h_k !== null, timeouts.stepMs, 'waiting for the sender to confirm the key');
  const h_k = peerBytes(st2.h_k, 'h_k');
  return closeOnWrongCode(client, auth, () => hs.verify(h_k));
}
