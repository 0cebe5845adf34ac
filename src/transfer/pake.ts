/**
 * SPAKE2 through the relay's channel fields (docs/protocol.md §4), for each role:
 * the sender posts x; the recipient posts y with hh_k (its confirmation); the sender checks it
 * and only then posts h_k (its own); the recipient checks that. A side that finds a wrong
 * confirmation never reveals its own MAC, so neither side learns anything it could test other
 * codes against offline.
 *
 * A wrong confirmation is one guess by whoever sat in the recipient seat, not the end of the
 * transfer: the sender rejects that recipient (the relay evicts it and clears x, y, hh_k), draws a
 * fresh ephemeral scalar, posts a new x and waits for the next recipient, up to MAX_CODE_ATTEMPTS
 * failed attempts per code (fewer if the relay allows fewer); then it closes "wrong-code".
 */
import { bytesToHex, hexToBytes } from '../core/assert.js';
import { closeOnWrongCode, pakeFieldBytes } from '../core/pake-fields.js';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import type { HandshakeContext, SenderHandshake } from '../core/handshake.js';
import type { SessionKeys } from '../core/key-schedule.js';
import { derivePasswordScalar } from '../core/password.js';
import { DEFAULT_CURVE, DEFAULT_MAX_ATTEMPTS, type ChannelState, type JoinResponse } from '../core/relay-api.js';
import { pause, type RelayClient } from './relay-client.js';
import { trace } from './trace.js';

/** Failed key confirmations per code after which the sender gives up (docs/protocol.md §8 has the odds). */
export const MAX_CODE_ATTEMPTS = DEFAULT_MAX_ATTEMPTS;
/**
 * Most x one route posts: an honest relay clears x once per evicted recipient (at most maxAttempts
 * rejected, and one per recipientTimeoutMs within the channel's life); a relay that keeps clearing
 * it cannot make the sender draw shares without end.
 */
const MAX_X_POSTS = 100;
/** Pause between a recipient's joins while the seat is taken (30 a minute: half the relay's default join limit). */
const JOIN_RETRY_PAUSE_MS = 2000;

export interface PakeTimeouts {
  /** How long the sender waits for a recipient to show up. */
  waitForPeerMs: number;
  /** How long each side waits for the other's next step once both are there. */
  stepMs: number;
}

let pakeCrypto: Promise<typeof import('./pake-crypto.js')> | undefined;
/** The SPAKE2 code (pake-crypto.ts), loaded once, on first use. */
const loadPakeCrypto = () => (pakeCrypto ??= import('./pake-crypto.js'));

/**
 * A recipient's password scalar, derived from the moment the code is known (startPasswordScalar),
 * for the join that got it. scrypt runs on libuv's thread pool while the recipient checks its
 * output folder, joins and loads the SPAKE2 code: ~10 ms of it overlap what the main thread does.
 */
const earlyScalars = new WeakMap<JoinResponse, EarlyScalar>();

/** The message of a seat that stayed taken: true whoever took it. */
export const SEAT_TAKEN_TEXT = 'someone else joined this channel first: if that was not you, the code may have been seen';

/** The recipient's password scalar, derived from the moment the code is known (scrypt runs on libuv's pool). */
export interface EarlyScalar {
  channel: string;
  secret: string;
  w: Promise<bigint>;
}

/**
 * Starts deriving w for `secret` on `channel` with the default curve, the one a sender uses
 * unless told otherwise (recipientPake derives it again for another curve or channel).
 */
export function startPasswordScalar(secret: string, channel: string): EarlyScalar {
  const w = derivePasswordScalar(secret, { curve: DEFAULT_CURVE, channel });
  w.catch(() => undefined); // awaited by recipientPake, which rethrows; unused otherwise
  return { channel, secret, w };
}

/**
 * Join as the recipient. While the seat is taken (ERR_CHANNEL_FULL) try again every 2 s for up to
 * `retryMs`: a stranger's seat is freed when its key agreement fails or times out on the relay.
 * Given the code's `early` scalar, the SPAKE2 code is loaded meanwhile and the scalar kept for
 * recipientPake (earlyScalars).
 */
export async function joinAsRecipient(client: RelayClient, channel: string, retryMs: number, signal?: AbortSignal, early?: EarlyScalar): Promise<JoinResponse> {
  const until = Date.now() + retryMs;
  for (;;) {
    try {
      // the SPAKE2 code is loaded while the join is under way, once the request has gone out
      // (loaded at once, its evaluation would hold the request back); awaited when used
      const join = await client.join({ role: 'recipient', channel }, early === undefined ? undefined : () => void loadPakeCrypto().catch(() => undefined));
      if (early !== undefined) earlyScalars.set(join, early);
      return join;
    } catch (e) {
      if (!isTscCrocError(e, 'ERR_CHANNEL_FULL')) throw e;
      if (Date.now() + JOIN_RETRY_PAUSE_MS > until)
        throw new TscCrocError('ERR_CHANNEL_FULL', `${SEAT_TAKEN_TEXT} (the seat was still taken after ${Math.round(retryMs / 1000)} s)`);
      await pause(JOIN_RETRY_PAUSE_MS, signal);
    }
  }
}


/** One place the sender can be reached: a relay client and its join. */
export interface Route {
  client: RelayClient;
  join: JoinResponse;
  via: 'relay' | 'lan';
}

/** Failed attempts, over all routes of one code. */
interface Tally {
  failed: number;
  /** MAX_CODE_ATTEMPTS, or less if a relay allows less (a relay that cannot reject allows 1). */
  max: number;
  /** A recipient joined at some point (to tell an expired code that nobody used from one nobody completed). */
  sawRecipient: boolean;
}

function wrongCodeGiveUp(t: Tally): TscCrocError {
  return t.failed <= 1 && t.max <= 1
    ? new TscCrocError('ERR_WRONG_CODE', 'the code is wrong: the other side could not confirm the key')
    : new TscCrocError(
        'ERR_WRONG_CODE',
        `the code is wrong: ${t.failed} attempts failed key confirmation (the most allowed per code): the recipient mistyped it, or someone is guessing; send again for a new code`,
      );
}

/**
 * The sender's side on one or more routes (a configured relay and the local one share a channel
 * name): a separate SPAKE2 state is offered on each, the first recipient to confirm the key is
 * taken, and the other routes are closed as cancelled. A recipient whose confirmation fails is
 * rejected and the route waits for the next one, with a fresh x (never the same scalar for two
 * recipients); `onFailedAttempt` is told each failure. Returns the winning route and the session keys.
 */
export async function senderPake(
  routes: Route[],
  secret: string,
  timeouts: PakeTimeouts,
  onWaiting: () => void,
  onFailedAttempt: (attempt: number, maxAttempts: number) => void = () => {},
): Promise<{ route: Route; keys: SessionKeys }> {
  const first = routes[0]!;
  const ctx: HandshakeContext = { curve: first.join.curve, channel: first.join.channel };
  const [{ senderStart }, w] = await Promise.all([loadPakeCrypto(), derivePasswordScalar(secret, ctx)]);
  trace('pake: sender has w');
  const deadline = Date.now() + timeouts.waitForPeerMs;
  const tally: Tally = { failed: 0, max: MAX_CODE_ATTEMPTS, sawRecipient: false };
  const stopAll = new AbortController();
  let giveUp: (e: unknown) => void = () => {};
  const gaveUp = new Promise<never>((_, reject) => (giveUp = reject));
  gaveUp.catch(() => undefined);

  interface Offer {
    route: Route;
    auth: { channel: string; uuid: string };
    hs: SenderHandshake;
    x: string;
    /** The channel version our x was posted at: only a later state that lacks it asks for a new one. */
    xVersion: number;
    posts: number;
    /** The relay's `attempts` already counted in the tally. */
    seen: number;
    stop: AbortController;
  }
  const post = async (o: Offer): Promise<ChannelState> => {
    // each offer's share from its own ephemeral scalar: no two transcripts share one
    if (++o.posts > MAX_X_POSTS) throw new TscCrocError('ERR_RELAY', 'the relay keeps clearing the key exchange');
    o.hs = senderStart(w, { curve: o.route.join.curve, channel: o.route.join.channel });
    o.x = bytesToHex(o.hs.x);
    const st = await o.route.client.channel({ ...o.auth, x: o.x });
    trace('pake: sender posted x');
    o.xVersion = st.version;
    return st;
  };
  /** Count the failures the relay reports; true when the tally reached its limit. */
  const note = (o: Offer, st: ChannelState): boolean => {
    if (st.recipient) tally.sawRecipient = true;
    tally.max = Math.min(tally.max, st.maxAttempts ?? 1);
    const attempts = st.attempts ?? 0;
    while (o.seen < attempts) {
      o.seen++;
      tally.failed++;
      onFailedAttempt(tally.failed, tally.max);
    }
    return tally.failed >= tally.max;
  };
  const serve = async (o: Offer, st: ChannelState): Promise<{ o: Offer; keys: SessionKeys }> => {
    for (;;) {
      if (note(o, st)) throw wrongCodeGiveUp(tally);
      if (st.x === null && st.version > o.xVersion) {
        st = await post(o);
        continue;
      }
      if (st.x === o.x && st.y !== null && st.hh_k !== null) {
        let finished: { h_k: Uint8Array; keys: SessionKeys };
        trace('pake: sender read y and hh_k');
        try {
          finished = o.hs.finish(pakeFieldBytes(st.y, 'y'), pakeFieldBytes(st.hh_k, 'hh_k'));
          trace('pake: sender finished SPAKE2');
        } catch (e) {
          if (!isTscCrocError(e, 'ERR_WRONG_CODE') && !isTscCrocError(e, 'ERR_BAD_PAKE_MESSAGE')) throw e;
          // one wrong guess (or a garbled share): refuse this recipient, unless it was the last try
          if (st.attempts === undefined || tally.failed + 1 >= tally.max) {
            tally.failed++;
            onFailedAttempt(tally.failed, tally.max);
            await o.route.client.close(o.auth, 'wrong-code');
            throw wrongCodeGiveUp(tally);
          }
          try {
            st = await o.route.client.channel({ ...o.auth, reject: true });
          } catch (refused) {
            st = await o.route.client.channel(o.auth); // the recipient left meanwhile (it is counted then too)
            if (st.closed || (st.y !== null && st.x === o.x)) throw refused;
          }
          continue;
        }
        try {
          await o.route.client.channel({ ...o.auth, h_k: bytesToHex(finished.h_k) });
          trace('pake: sender posted h_k');
          return { o, keys: finished.keys };
        } catch (refused) {
          st = await o.route.client.channel(o.auth); // the recipient left before h_k: wait for the next one
          if (st.closed || st.y !== null) throw refused;
          continue;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new TscCrocError('ERR_TIMEOUT', 'timed out waiting for the recipient');
      const { x, seen, xVersion } = o;
      st = await o.route.client.waitFor(
        o.auth,
        (s) => (s.x === null && s.version > xVersion) || (s.x === x && s.y !== null && s.hh_k !== null) || (s.attempts ?? 0) > seen || (s.recipient && !tally.sawRecipient),
        left,
        'waiting for the recipient',
        o.stop.signal,
      );
    }
  };

  const offers: Offer[] = [];
  const firstStates = await Promise.all(
    routes.map(async (route) => {
      const o = { route, auth: { channel: route.join.channel, uuid: route.join.uuid }, seen: 0, posts: 0, xVersion: 0, stop: new AbortController() } as Offer;
      offers.push(o);
      return { o, st: await post(o) };
    }),
  );
  onWaiting();
  let won: { o: Offer; keys: SessionKeys };
  try {
    won = await Promise.race([
      Promise.any(
        firstStates.map(({ o, st }) =>
          serve(o, st).catch((e: unknown) => {
            // out of attempts on any route ends them all
            if (isTscCrocError(e, 'ERR_WRONG_CODE') || stopAll.signal.aborted) giveUp(e);
            throw e;
          }),
        ),
      ),
      gaveUp,
    ]);
  } catch (raw) {
    stopAll.abort();
    for (const o of offers) o.stop.abort();
    let e = raw instanceof AggregateError ? (raw.errors.find((x) => !isTscCrocError(x, 'ERR_CANCELLED')) ?? raw.errors[0]) : raw;
    if (isTscCrocError(e, 'ERR_TIMEOUT') && (tally.failed > 0 || tally.sawRecipient))
      e = new TscCrocError(
        'ERR_TIMEOUT',
        tally.failed > 0
          ? `the code expired: ${tally.failed} wrong ${tally.failed === 1 ? 'code was' : 'codes were'} tried, and the right recipient did not come in time`
          : 'the code expired: a recipient joined but did not complete the key agreement in time',
        { cause: e },
      );
    throw e;
  }
  for (const other of offers) {
    if (other === won.o) continue;
    other.stop.abort();
    void other.route.client.close(other.auth, 'cancelled');
  }
  return { route: won.o.route, keys: won.keys };
}

export async function recipientPake(client: RelayClient, join: JoinResponse, secret: string, timeouts: PakeTimeouts): Promise<SessionKeys> {
  const auth = { channel: join.channel, uuid: join.uuid };
  const ctx: HandshakeContext = { curve: join.curve, channel: join.channel };
  // the password scalar is derived while the first long-poll is under way (or was, during the join)
  const early = earlyScalars.get(join);
  earlyScalars.delete(join);
  const [{ recipientRespond }, w, st] = await Promise.all([
    loadPakeCrypto(),
    early !== undefined && early.channel === join.channel && early.secret === secret && join.curve === DEFAULT_CURVE
      ? early.w
      : derivePasswordScalar(secret, ctx),
    // the join's answer carries the channel (relays since it has `state`): x is usually there already
    join.state?.x != null && !join.state.closed ? join.state : client.waitFor(auth, (s) => s.x !== null, timeouts.stepMs, 'waiting for the sender', undefined, 'recipient'),
  ]);
  trace('pake: recipient has w and x');
  const x = pakeFieldBytes(st.x, 'x');
  const hs = await closeOnWrongCode(client, auth, () => recipientRespond(w, ctx, x));
  trace('pake: recipient computed y and hh_k');
  await client.channel({ ...auth, y: bytesToHex(hs.y), hh_k: bytesToHex(hs.hh_k) });
  trace('pake: recipient posted y and hh_k');
  const st2 = await client.waitFor(auth, (s) => s.h_k !== null, timeouts.stepMs, 'waiting for the sender to confirm the key', undefined, 'recipient');
  const h_k = pakeFieldBytes(st2.h_k, 'h_k');
  trace('pake: recipient read h_k');
  return closeOnWrongCode(client, auth, () => hs.verify(h_k));
}
