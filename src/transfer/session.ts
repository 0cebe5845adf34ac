/**
 * The life cycle shared by both roles once joined: on success the relay channel is closed as
 * "done"; on failure the other side is told why (a fixed, generic text per error code, never a
 * local path or a secret), the relay channel is closed with a reason, and the error goes on up.
 * An AbortSignal cancels at any stage; the other side then reads "cancelled".
 */
import { TscCrocError, isTscCrocError, type ErrorCode } from '../core/errors.js';
import type { JoinResponse, PeerCloseReason } from '../core/relay-api.js';
import type { RelayClient } from './relay-client.js';
import type { SecureChannel } from './secure-channel.js';
import { trace } from './trace.js';

export interface Session {
  /** Set once the encrypted channel is up, so that failures can be told to the other side. */
  channel: SecureChannel | null;
  /** A recipient that sent `received`: its proof, left in the channel with its goodbye (docs/protocol.md §7.1). */
  fin?: string;
}

/** Errors that came from the other side or the connection: nothing to tell the other side. */
const REMOTE: readonly ErrorCode[] = ['ERR_PEER_ERROR', 'ERR_CONNECTION_LOST', 'ERR_PEER_LOST', 'ERR_RELAY_LOST', 'ERR_DECLINED', 'ERR_WRONG_CODE', 'ERR_CHANNEL_CLOSED'];

const PUBLIC_TEXT: Partial<Record<ErrorCode, string>> = {
  ERR_CANCELLED: 'cancelled',
  ERR_IO: 'a file could not be read or written on its side (what arrived is kept: run the same commands again to resume)',
  ERR_DISK_FULL: 'the disk is full (what arrived is kept: send again to resume)',
  ERR_NOT_WRITABLE: 'the output folder is not writable',
  ERR_SOURCE_CHANGED: 'a file changed while it was being sent (send again)',
  ERR_STALLED: 'nothing arrived for too long',
  ERR_FILE_EXISTS: 'a file already exists and may not be overwritten',
  ERR_UNSAFE_PATH: 'a file name was refused as unsafe',
  ERR_INTEGRITY: 'the data did not match its checksum',
  ERR_PROTOCOL: 'a protocol violation was detected',
  ERR_DECLINED: 'declined',
};

/** The reason to post when closing a channel because of `e`. */
export function closeReasonFor(raw: unknown): PeerCloseReason {
  const e = isTscCrocError(raw) ? raw : null;
  if (e?.code === 'ERR_CANCELLED') return 'cancelled';
  if (e?.code === 'ERR_WRONG_CODE') return 'wrong-code';
  return 'error';
}


/** Best effort, bounded: tell the other side why we stop, then END. */
export async function notifyPeer(channel: SecureChannel, e: TscCrocError): Promise<void> {
  const message = PUBLIC_TEXT[e.code] ?? 'the transfer failed';
  const attempt = (async () => {
    await channel.sendMessage({ type: 'error', code: e.code, message });
    await channel.end();
  })().catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([attempt, new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
  clearTimeout(timer);
}

export async function withSession<T>(
  client: RelayClient,
  join: JoinResponse,
  signal: AbortSignal | undefined,
  body: (s: Session) => Promise<T>,
): Promise<T> {
  const auth = { channel: join.channel, uuid: join.uuid };
  const session: Session = { channel: null };
  let notified = false;
  const cancelled = new TscCrocError('ERR_CANCELLED', 'cancelled');
  const onAbort = () => {
    const ch = session.channel;
    if (!ch) return; // earlier stages watch the signal themselves
    notified = true;
    void notifyPeer(ch, cancelled).then(() => ch.close(1000));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal?.aborted) throw cancelled;
    const result = await body(session);
    trace('session: transfer done, closing the relay channel');
    await client.close(auth, 'done', session.fin);
    trace('session: relay channel closed');
    return result;
  } catch (raw) {
    const e = signal?.aborted ? cancelled : isTscCrocError(raw) ? raw : new TscCrocError('ERR_IO', String((raw as Error)?.message ?? raw), { cause: raw });
    if (session.channel && !notified && !REMOTE.includes(e.code) && !(e.code === 'ERR_CANCELLED' && !signal?.aborted)) {
      await notifyPeer(session.channel, e);
    }
    // end gracefully, so that what we just told the other side is flushed, not dropped
    await session.channel?.close(2000);
    await client.close(auth, closeReasonFor(e));
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
