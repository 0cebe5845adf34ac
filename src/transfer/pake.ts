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

/** One place the sender can be reached: a relay client and its join. */
export interface Route {
  client: RelayClient;
  join: JoinResponse;
  via: 'relay' | 'lan';
}

/**
 * The sender's side on one or more routes (a configured relay and the local one share a channel
 * name): a separate SPAKE2 state is offered on each, the first recipient to answer is taken, and
 * the other routes are closed as cancelled. Returns the winning route and the session keys.
 */
export async function senderPake(
  routes: Route[],
  secret: string,
  timeouts: PakeTimeouts,
  onWaiting: () => void,
): Promise<{ route: Route; keys: SessionKeys }> {
  const first = routes[0]!;
  const ctx: HandshakeContext = { curve: first.join.curve, channel: first.join.channel };
  const w = await derivePasswordScalar(secret, ctx);
  const offers = await Promise.all(
    routes.map(async (route) => {
      const auth = { channel: route.join.channel, uuid: route.join.uuid };
      // each route's share from its own ephemeral scalar: no two transcripts share one
      const hs = senderStart(w, { curve: route.join.curve, channel: route.join.channel });
      await route.client.channel({ ...auth, x: bytesToHex(hs.x) });
      return { route, auth, hs, stop: new AbortController() };
    }),
  );
  onWaiting();
  let won: { o: (typeof offers)[number]; y: string | null; hh_k: string | null };
  try {
    won = await Promise.any(
      offers.map(async (o) => {
        const st = await o.route.client.waitFor(o.auth, (s) => s.y !== null && s.hh_k !== null, timeouts.waitForPeerMs, 'waiting for the recipient', o.stop.signal);
        return { o, y: st.y, hh_k: st.hh_k };
      }),
    );
  } catch (e) {
    throw e instanceof AggregateError ? e.errors[0] : e;
  }
  for (const other of offers) {
    if (other === won.o) continue;
    other.stop.abort();
    void other.route.client.close(other.auth, 'cancelled');
  }
  const { o } = won;
  const y = peerBytes(won.y, 'y');
  const hh_k = peerBytes(won.hh_k, 'hh_k');
  const { h_k, keys } = await closeOnWrongCode(o.route.client, o.auth, () => o.hs.finish(y, hh_k));
  await o.route.client.channel({ ...o.auth, h_k: bytesToHex(h_k) });
  return { route: o.route, keys };
}

export async function recipientPake(client: RelayClient, join: JoinResponse, secret: string, timeouts: PakeTimeouts): Promise<SessionKeys> {
  const auth = { channel: join.channel, uuid: join.uuid };
  const ctx: HandshakeContext = { curve: join.curve, channel: join.channel };
  // the password scalar is derived while the first long-poll is under way
  const [w, st] = await Promise.all([
    derivePasswordScalar(secret, ctx),
    client.waitFor(auth, (s) => s.x !== null, timeouts.stepMs, 'waiting for the sender'),
  ]);
  const x = peerBytes(st.x, 'x');
  const hs = await closeOnWrongCode(client, auth, () => recipientRespond(w, ctx, x));
  await client.channel({ ...auth, y: bytesToHex(hs.y), hh_k: bytesToHex(hs.hh_k) });
  const st2 = await client.waitFor(auth, (s) => s.h_k !== null, timeouts.stepMs, 'waiting for the sender to confirm the key');
  const h_k = peerBytes(st2.h_k, 'h_k');
  return closeOnWrongCode(client, auth, () => hs.verify(h_k));
}
