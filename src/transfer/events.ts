/** What a transfer reports while it runs (library callers and the CLI's progress and --json). */

/** 'checking': the sender reads what the recipient already holds of a file, to prove it matches. */
export type Stage = 'connecting' | 'securing' | 'waiting' | 'checking' | 'transferring';

/** What is sent: 'files' (files and folders), 'text' (a message), or 'stream' (piped data of unknown length). */
export type ContentKind = 'files' | 'text' | 'stream';

export interface OfferInfo {
  kind: ContentKind;
  totalFiles: number;
  totalDirs: number;
  totalBytes: number;
  /** The top-level names (files and folders), made safe to display. */
  names: string[];
  /** Those of `names` that already exist in the output folder (files would be replaced, folders added to). */
  existing: string[];
  /** Bytes of this offer that an earlier, interrupted run already received here: they are not sent again. */
  heldBytes: number;
}

export type TransferEvent =
  /**
   * Sender: the walk of the folders to send is taking a while (after 1 s, then every 5 s):
   * `entries` files and folders found so far; once more with `done` when it ends.
   */
  | { type: 'reading'; entries: number; done: boolean }
  /**
   * Sender: things inside the folders that are not sent (before the code is shown): files and
   * folders that cannot be read (with skipUnreadable), symlinks, special files or names the
   * recipient would refuse, folders nested too deep. `paths` (display-safe) names at most 100 of `count`.
   */
  | { type: 'left-out'; reason: 'unreadable' | 'symlink' | 'special' | 'too-deep'; paths: string[]; count: number }
  /** Recipient: the output folder did not exist and was created (`path` as given, display-safe). */
  | { type: 'created-folder'; path: string }
  /** `web`: the link that receives in a browser (`<relay>/#<code>`), when the relay serves its page. */
  | { type: 'code'; code: string; web?: string }
  /**
   * 'connecting' says where: `relay`, the configured relay's host:port when it is used; `local`,
   * whether the local network is used too (the sender announces its channel there; the recipient
   * looks there first, for the whole wait when there is no relay).
   */
  | { type: 'stage'; stage: 'connecting'; relay?: string | undefined; local?: boolean | undefined }
  /** 'transferring' says what moves: its kind and its number of files (0 for a text or a stream). */
  | { type: 'stage'; stage: 'transferring'; kind?: ContentKind | undefined; files?: number | undefined }
  | { type: 'stage'; stage: Exclude<Stage, 'connecting' | 'transferring'> }
  /** Which way the two sides met: a relay, or the local network. */
  | { type: 'route'; via: 'relay' | 'lan' }
  /**
   * Sender: someone used the channel with a wrong code (its key confirmation failed); the sender
   * keeps waiting for the right recipient until `attempt` reaches `maxAttempts`.
   */
  | { type: 'wrong-code'; attempt: number; maxAttempts: number }
  | { type: 'offer'; offer: OfferInfo }
  /**
   * Top-level names the recipient already has and keeps (once per run, after the offer is
   * answered): they are not sent, and `done` counts only what was.
   */
  | { type: 'skipped'; names: string[] }
  /** `offset`: where the data starts (more than 0 when an earlier run had received the rest). */
  | { type: 'file-start'; path: string; size: number; offset: number }
  | { type: 'progress'; bytes: number; totalBytes: number }
  /** `path`: as in the offer (relative to the output folder), on both sides. */
  | { type: 'file-done'; path: string; size: number }
  /** The connection dropped; trying to reach the other side again until `untilMs` (a Date.now() time). */
  | { type: 'reconnecting'; attempt: number; untilMs: number; reason: string }
  | { type: 'reconnected' }
  /** Recipient: the sender has not started yet; waiting for it (on the relay, or the local network) until `untilMs`. */
  | { type: 'waiting-for-sender'; via: 'relay' | 'lan'; untilMs: number }
  /**
   * The end. `bytes`: the size of what was sent (for a stream, the bytes that went through);
   * `resumedBytes`: of those, what an earlier, interrupted run had already moved (not sent again);
   * `movedBytes`: the data this run actually sent (sender) or received (recipient), over all its
   * connections (after a reconnection, a part may have moved twice).
   */
  | { type: 'done'; kind: ContentKind; files: number; bytes: number; resumedBytes: number; movedBytes: number };

export type EventSink = (e: TransferEvent) => void;

/**
 * The host:port of a relay address, for the 'connecting' stage (never a user name or password
 * the address may hold); undefined when it is not a URL (the connection then fails with the reason).
 */
export function relayHost(relay: string): string | undefined {
  try {
    return new URL(/^[a-z]+:\/\//i.test(relay) ? relay : `http://${relay}`).host || undefined;
  } catch {
    return undefined;
  }
}

export const DEFAULT_TIMEOUTS = {
  /** The sender waits this long for a recipient to use the code. */
  waitForPeerMs: 60 * 60 * 1000,
  /** Each later step of the handshake, once both sides are there. */
  stepMs: 60 * 1000,
  /**
   * Recipient: how long to keep trying to join while someone else holds the recipient seat (the
   * relay frees a seat whose holder does not answer within its recipientTimeoutMs, 30 s by default).
   */
  joinRetryMs: 40 * 1000,
  /** Connecting to the relay's TCP port and being stapled to the other side. */
  stapleMs: 60 * 1000,
  /** A side that sent nothing else for this long sends a keepalive (relays close idle pairs after 5 min). */
  keepaliveMs: 30 * 1000,
  /**
   * Nothing at all from the other side for this long, though we are waiting for it: the
   * connection stalled. Must be well above the other side's keepaliveMs (3× by default).
   */
  stallMs: 90 * 1000,
  /**
   * After a dropped connection mid-transfer, how long to keep trying to reach the other side
   * again (0: never). Longer than stallMs, so that a side that only learns of a silent drop
   * through its stall check still finds the other one waiting.
   */
  reconnectMs: 120 * 1000,
  /**
   * Recipient: how long to wait for a sender that has not started yet (0: fail at once). With no
   * relay configured, the local network is listened on this long (at least discoverMs). The
   * library fails at once by default; the CLI waits 5 minutes (--wait).
   */
  waitForSenderMs: 0,
  /** With no relay configured, how long the recipient listens for the sender on the local network. */
  discoverMs: 5 * 1000,
  /** With a relay configured too, how long the recipient looks on the local network first. */
  lanPreferMs: 1000,
};

/**
 * Run a transfer as an async generator of its events, returning its result (or throwing its
 * error) at the end. A consumer that reads slowly never makes the queue grow without bound:
 * progress events that were not read yet are replaced by the newest one.
 */
export async function* iterateEvents<T>(run: (onEvent: EventSink) => Promise<T>): AsyncGenerator<TransferEvent, T> {
  const queue: TransferEvent[] = [];
  let wake: (() => void) | null = null;
  let settled = false;
  const poke = () => {
    wake?.();
    wake = null;
  };
  const outcome = run((e) => {
    const last = queue.at(-1);
    if (e.type === 'progress' && last?.type === 'progress') queue[queue.length - 1] = e;
    else queue.push(e);
    poke();
  }).finally(() => {
    settled = true;
    poke();
  });
  outcome.catch(() => undefined); // thrown to the consumer below
  for (;;) {
    const e = queue.shift();
    if (e !== undefined) {
      yield e;
      continue;
    }
    if (settled) return await outcome;
    await new Promise<void>((r) => (wake = r));
  }
}
