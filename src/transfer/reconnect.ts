/**
 * Meeting again after the connection dropped mid-transfer (a relay restart, a network blip):
 * each side rejoins the relay on a channel derived from the session keys (src/core/reconnect-code.ts),
 * runs SPAKE2 again with the derived password, and retries with backoff until a deadline. The
 * caller then starts a new session that continues where the last one stopped.
 */
import { hexToBytes } from '../core/assert.js';
import { TscCrocError, isTscCrocError, type ErrorCode } from '../core/errors.js';
import { isReceivedProof } from '../core/received-proof.js';
import type { SessionKeys } from '../core/key-schedule.js';
import { RECONNECT_SLOTS, reconnectCode, type ReconnectCode } from '../core/reconnect-code.js';
import type { CurveName, JoinResponse } from '../core/relay-api.js';
import type { DEFAULT_TIMEOUTS } from './events.js';
import { recipientPake, senderPake } from './pake.js';
import type { RelayClient } from './relay-client.js';
import { closeReasonFor } from './session.js';

/** Failures of the connection itself, after which meeting again can continue the transfer. */
const RECONNECTABLE: readonly ErrorCode[] = ['ERR_CONNECTION_LOST', 'ERR_STALLED', 'ERR_RECORD_TRUNCATED'];

export function isReconnectable(e: unknown): boolean {
  return isTscCrocError(e) && RECONNECTABLE.includes(e.code);
}

/** First wait between attempts; doubles up to BACKOFF_MAX_MS. */
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 4000;

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(new TscCrocError('ERR_CANCELLED', 'cancelled'));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface Rejoined {
  join: JoinResponse;
  keys: SessionKeys;
}

/**
 * Rejoin as `role` until `untilMs`, after the connection failed with `why`. `keys` are the keys of the first session (both sides hold
 * them whatever happened since). Throws ERR_RELAY_LOST when the relay stayed unreachable,
 * ERR_PEER_LOST when it answered but the other side never came back, or ERR_CANCELLED.
 */
export async function rejoin(
  why: unknown,
  role: 'sender' | 'recipient',
  client: RelayClient,
  keys: SessionKeys,
  curve: CurveName,
  untilMs: number,
  signal: AbortSignal | undefined,
  timeouts: typeof DEFAULT_TIMEOUTS,
): Promise<Rejoined> {
  let last: unknown = null;
  for (let attempt = 0; Date.now() < untilMs; attempt++) {
    if (signal?.aborted) throw new TscCrocError('ERR_CANCELLED', 'cancelled');
    let joined: { join: JoinResponse; code: ReconnectCode } | null = null;
    try {
      joined = await (role === 'sender' ? joinAsSender(client, keys, curve) : joinAsRecipient(client, keys));
      if (joined !== null) {
        const remaining = Math.max(1000, untilMs - Date.now());
        const pakeTimeouts = { waitForPeerMs: remaining, stepMs: Math.min(timeouts.stepMs, remaining) };
        const newKeys =
          role === 'sender'
            ? (await senderPake([{ client, join: joined.join, via: 'relay' }], joined.code.secret, pakeTimeouts, () => {})).keys
            : await recipientPake(client, joined.join, joined.code.secret, pakeTimeouts);
        return { join: joined.join, keys: newKeys };
      }
      last = null; // the relay answered; the other side is not there (yet)
    } catch (e) {
      if (isTscCrocError(e, 'ERR_CANCELLED') || signal?.aborted) throw new TscCrocError('ERR_CANCELLED', 'cancelled');
      if (isTscCrocError(e, 'ERR_WRONG_CODE') || isTscCrocError(e, 'ERR_BAD_PAKE_MESSAGE')) throw e; // not the other side: never retry a key
      last = e;
      if (joined !== null) await client.close({ channel: joined.join.channel, uuid: joined.join.uuid }, closeReasonFor(e));
    }
    const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 10), Math.max(0, untilMs - Date.now()));
    await sleep(wait, signal);
  }
  const seconds = Math.round(timeouts.reconnectMs / 1000);
  const other = role === 'sender' ? 'recipient' : 'sender';
  const resume = role === 'recipient' ? 'what arrived is kept: run the same command again to resume' : 'run the same command again to resume';
  if (isTscCrocError(last, 'ERR_RELAY_UNREACHABLE'))
    throw new TscCrocError('ERR_RELAY_LOST', `lost the relay mid-transfer and it did not come back within ${seconds} s; ${resume}`, { cause: last });
  if (isTscCrocError(why, 'ERR_STALLED'))
    throw new TscCrocError('ERR_STALLED', `the connection stalled (nothing arrived for ${Math.round(timeouts.stallMs / 1000)} s) and meeting the ${other} again failed within ${seconds} s; ${resume}`, { cause: last });
  throw new TscCrocError('ERR_PEER_LOST', `the connection dropped and the ${other} did not come back within ${seconds} s; ${resume}`, { cause: last });
}

/** The lowest slot with no channel: the sender creates it there. Null if every slot is taken. */
async function joinAsSender(client: RelayClient, keys: SessionKeys, curve: CurveName): Promise<{ join: JoinResponse; code: ReconnectCode } | null> {
  for (let slot = 0; slot < RECONNECT_SLOTS; slot++) {
    const code = reconnectCode(keys, slot);
    try {
      return { join: await client.join({ role: 'sender', curve, channel: code.channel }), code };
    } catch (e) {
      if (!isTscCrocError(e, 'ERR_CHANNEL_FULL')) throw e; // occupied: a channel of an earlier attempt
    }
  }
  return null;
}

/**
 * Slots in order, skipping channels closed or taken by an earlier attempt; at the first slot
 * with no channel, the sender is not there yet: null, try again later.
 */
async function joinAsRecipient(client: RelayClient, keys: SessionKeys): Promise<{ join: JoinResponse; code: ReconnectCode } | null> {
  for (let slot = 0; slot < RECONNECT_SLOTS; slot++) {
    const code = reconnectCode(keys, slot);
    try {
      return { join: await client.join({ role: 'recipient', channel: code.channel }), code };
    } catch (e) {
      if (isTscCrocError(e, 'ERR_CHANNEL_NOT_FOUND')) return null;
      if (!isTscCrocError(e, 'ERR_CHANNEL_FULL') && !isTscCrocError(e, 'ERR_CHANNEL_CLOSED')) throw e;
    }
  }
  return null;
}

/**
 * A sender whose connection dropped after it sent everything, before it read `received`: reads the
 * failed session's channel on the relay for the recipient's proof (docs/protocol.md §7.1, left
 * with the recipient's goodbye). True once a proof is there and is this session's; false for a
 * wrong one, at `untilMs`, or when `signal` aborts. Reads back off from 100 ms to every 2 s; a read
 * that fails (the relay briefly unreachable, the channel gone) is tried again until then.
 */
export async function recipientProof(client: RelayClient, join: JoinResponse, keys: SessionKeys, untilMs: number, signal: AbortSignal): Promise<boolean> {
  const auth = { channel: join.channel, uuid: join.uuid };
  for (let waitMs = 100; Date.now() < untilMs && !signal.aborted; waitMs = Math.min(2000, waitMs * 2)) {
    try {
      const state = await client.channel(auth);
      if (state.fin !== undefined) return isReceivedProof(keys, hexToBytes(state.fin, 'fin'));
    } catch {
      // not readable now: again below, until the deadline
    }
    try {
      await sleep(Math.min(waitMs, Math.max(0, untilMs - Date.now())), signal);
    } catch {
      return false; // aborted: the rejoin won, or the user cancelled
    }
  }
  return false;
}
