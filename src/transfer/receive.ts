/**
 * The receiving side: parse the code, join the relay, run SPAKE2, then let the recipient state
 * machine (src/core/recipient-machine.ts) check every message while FileSink writes the files.
 */
import { resolve } from 'node:path';
import { bytesToHex } from '../core/assert.js';
import { parseCode } from '../core/code-phrase.js';
import { receivedProof } from '../core/received-proof.js';
import { TscCrocError, isTscCrocError, type ErrorCode } from '../core/errors.js';
import { parseMessage, type OfferMessage } from '../core/messages.js';
import { displayName } from '../core/path.js';
import { initialRecipientState, recipientStep, type RecipientInput, type RecipientState } from '../core/recipient-machine.js';
import { RecordType, recordPayload } from '../core/record.js';
import { DEFAULT_TIMEOUTS, relayHost, type ContentKind, type EventSink, type OfferInfo } from './events.js';
import { FileSink, type CommittedFile } from './file-sink.js';
import { joinAsRecipient, recipientPake, startPasswordScalar } from './pake.js';
import { RelayClient, joinWhenSenderThere } from './relay-client.js';
import { SecureChannel } from './secure-channel.js';
import { withSession } from './session.js';
import { findHeld, offerId } from './resume-store.js';
import { isReconnectable, rejoin } from './reconnect.js';
import type { SessionKeys } from '../core/key-schedule.js';
import type { JoinResponse } from '../core/relay-api.js';
import { StreamTarget } from './stream-target.js';
import { staple } from './tcp.js';

/**
 * Failures that say the bytes of the file being received are bad or hostile: its partial data
 * from this session is dropped. After any other failure (the connection, the relay, the disk,
 * the other side quitting) what arrived is kept under its temporary name, to be resumed; and
 * bytes an earlier run had received are kept in every case (the next run proves them again).
 */
const DROP_PARTIAL: readonly ErrorCode[] = ['ERR_INTEGRITY', 'ERR_PROTOCOL', 'ERR_UNSAFE_PATH'];

/** Settle with `p`, or reject with ERR_CANCELLED as soon as `signal` aborts (a prompt must not outlive a cancel). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new TscCrocError('ERR_CANCELLED', 'cancelled'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new TscCrocError('ERR_CANCELLED', 'cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * The user's decision on an offer, before anything is written: the accept callback, then consent
 * for names that already exist, each replaced or kept (`skip`: those kept, left out of the
 * transfer). A refusal (no terminal, an existing name, nowhere to write a stream) declines to the
 * sender and is reported here. Keepalives go out meanwhile, so the relay does not cut a
 * connection a person is looking at.
 */
async function decide(
  opts: ReceiveOptions,
  sink: FileSink,
  o: OfferMessage,
  heldBytes: number,
): Promise<{ accept: boolean; refusal: unknown; toStdout: boolean; skip: string[] }> {
  const existing = opts.fileToStream ? [] : await sink.existing(o.names); // --stdout writes nothing to disk
  const offer: OfferInfo = {
    kind: o.kind,
    totalFiles: o.totalFiles,
    totalDirs: o.totalDirs,
    totalBytes: o.totalBytes,
    names: o.names.map(displayName),
    existing: existing.map(displayName),
    heldBytes,
  };
  opts.onEvent?.({ type: 'offer', offer });
  try {
    const toStdout = opts.fileToStream === true && o.kind === 'files';
    if (toStdout && (o.totalFiles !== 1 || o.totalDirs !== 0 || !opts.streamTo))
      throw new TscCrocError('ERR_INVALID_ARGUMENT', 'only a single file can be written to stdout, and this offer is not one');
    if (o.kind === 'stream' && !opts.streamTo)
      throw new TscCrocError('ERR_INVALID_ARGUMENT', 'the sender offers piped data, but there is nowhere to write it (receive it with a stream target, e.g. the CLI writes it to stdout)');
    // an offer that cannot fit is refused before the user is asked and before anything is written
    if (o.kind === 'files' && !toStdout) await sink.checkRoom(o.totalBytes, heldBytes, o.totalFiles + o.totalDirs);
    const accept = opts.accept ? await untilAborted(Promise.resolve(opts.accept(offer)), opts.signal) : false;
    let skip: string[] = [];
    if (accept && existing.length > 0) {
      const ow = opts.overwrite;
      const answer = typeof ow === 'function' ? await untilAborted(Promise.resolve(ow(offer.existing)), opts.signal) : ow === 'skip' ? { replace: [], skip: offer.existing } : ow === true;
      const replace = perName(answer, existing, offer.existing);
      if (replace === null) {
        const list = offer.existing.slice(0, 5).join(', ') + (existing.length > 5 ? ', ...' : '');
        throw new TscCrocError('ERR_FILE_EXISTS', `already in ${sink.outDir}: ${list} (nothing was written; use --overwrite to replace, or --skip-existing to keep them and receive the rest)`);
      }
      skip = existing.filter((n) => !replace.has(n));
      if (replace.size > 0) sink.allowOverwrite(true); // skipped names are refused by the recipient machine, whatever comes
    }
    return { accept, refusal: null, toStdout, skip };
  } catch (e) {
    return { accept: false, refusal: e, toStdout: false, skip: [] };
  }
}

/** What `overwrite` may answer: all (true), none (false: refuse the transfer), or name by name. */
export type OverwriteAnswer = boolean | { replace: readonly string[]; skip: readonly string[] };

/**
 * The existing names to replace, from the overwrite answer (null: refuse the transfer). A per-name
 * answer must place each existing name (as shown, `shown[i]` for `existing[i]`) in exactly one of
 * its lists, and nothing else.
 */
function perName(answer: OverwriteAnswer, existing: readonly string[], shown: readonly string[]): Set<string> | null {
  if (typeof answer === 'boolean') return answer ? new Set(existing) : null;
  const replace = new Set(answer.replace);
  const skip = new Set(answer.skip);
  const known = new Set(shown);
  for (const n of [...replace, ...skip])
    if (!known.has(n)) throw new TscCrocError('ERR_INVALID_ARGUMENT', `overwrite: ${JSON.stringify(displayName(n))} is not one of the existing names`);
  const out = new Set<string>();
  shown.forEach((n, i) => {
    if (replace.has(n) === skip.has(n)) throw new TscCrocError('ERR_INVALID_ARGUMENT', `overwrite: ${JSON.stringify(n)} must be in exactly one of replace and skip`);
    if (replace.has(n)) out.add(existing[i]!);
  });
  return out;
}

export interface ReceiveOptions {
  /** The relay's HTTP address. Without one, the sender is looked for on the local network. */
  relay?: string | undefined;
  /** The local network: 'auto' (default) tries it first, 'only' uses nothing else, 'off' never. */
  lan?: 'auto' | 'only' | 'off' | undefined;
  /** Interfaces (names or IPv4 addresses) that local-network discovery listens on; default: all. */
  interfaces?: readonly string[] | undefined;
  /** The relay's password, if its operator set one. */
  relayPassword?: string | undefined;
  /** The code the sender showed, as typed. */
  code: string;
  /** Folder to write into (default: the current folder); created, with its parents, if missing (a 'created-folder' event). */
  outDir?: string | undefined;
  /**
   * What to do when offered names already exist in the output folder: true replaces files and
   * writes into folders; 'skip' keeps every one of them as it is and receives the rest (they are
   * left out of the transfer, and the sender is told); false (the default) refuses the transfer
   * before anything is written. A function decides: it gets the existing names (display-safe)
   * and answers true, false, or per name `{ replace, skip }` (each existing name in exactly one);
   * it may throw to decline with a reason (e.g. ERR_DECLINED).
   */
  overwrite?: boolean | 'skip' | ((existing: string[]) => OverwriteAnswer | Promise<OverwriteAnswer>) | undefined;
  /**
   * Decide on the offer before anything is written. Without it every offer is declined. It may
   * throw to decline with a reason; an abort of `signal` while it runs cancels the transfer.
   */
  accept?: ((offer: OfferInfo) => boolean | Promise<boolean>) | undefined;
  signal?: AbortSignal | undefined;
  onEvent?: EventSink | undefined;
  timeouts?: Partial<typeof DEFAULT_TIMEOUTS> | undefined;
  /**
   * Where piped data (a 'stream' offer) goes, e.g. process.stdout; written as it arrives, with
   * backpressure. Without it a stream offer is refused.
   */
  streamTo?: NodeJS.WritableStream | undefined;
  /** Write a single offered file to `streamTo` instead of the output folder (the CLI's --stdout). */
  fileToStream?: boolean | undefined;
}

export interface ReceiveResult {
  files: CommittedFile[];
  bytes: number;
  /** Of `bytes`, those an earlier, interrupted run had already received (not sent again). */
  resumedBytes: number;
  /** Offered top-level names that were already here and kept (not received). */
  skipped: string[];
  /** The message, when a text was sent. */
  text?: string;
}

export async function receive(opts: ReceiveOptions): Promise<ReceiveResult> {
  const emit: EventSink = opts.onEvent ?? (() => {});
  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const code = parseCode(opts.code);
  // w from the code at once: scrypt runs on libuv's pool while the folder is checked and the relay joined
  const early = startPasswordScalar(code.secret, code.channel);
  const sink = new FileSink(resolve(opts.outDir ?? '.'), opts.overwrite === true);
  // a missing output folder is created (with its parents), as croc does
  if (await sink.checkOutDir()) emit({ type: 'created-folder', path: displayName(opts.outDir ?? '.') });
  // The local network first, when allowed: briefly if a relay is configured (the sender then
  // listens on both), for the whole window if there is none or it is the only way allowed.
  const lan = opts.lan ?? 'auto';
  let relay = lan === 'only' ? undefined : opts.relay;
  let via: 'relay' | 'lan' = 'relay';
  emit({ type: 'stage', stage: 'connecting', relay: relay === undefined ? undefined : relayHost(relay), local: lan !== 'off' });
  if (lan !== 'off') {
    try {
      // with no relay, the local network is the only place the sender can come from: wait for it there
      const lanMs = relay === undefined ? Math.max(timeouts.discoverMs, timeouts.waitForSenderMs) : timeouts.lanPreferMs;
      const waiting = { afterMs: timeouts.lanPreferMs, onWaiting: () => emit({ type: 'waiting-for-sender', via: 'lan', untilMs: Date.now() + lanMs - timeouts.lanPreferMs }) };
      relay = await (await import('./discovery.js')).discover(code.channel, lanMs, opts.signal, opts.interfaces, relay === undefined && timeouts.waitForSenderMs > 0 ? waiting : undefined);
      via = 'lan';
    } catch (e) {
      if (relay === undefined || isTscCrocError(e, 'ERR_CANCELLED') || isTscCrocError(e, 'ERR_INVALID_ARGUMENT')) throw e;
    }
  }
  if (relay === undefined) throw new TscCrocError('ERR_INVALID_ARGUMENT', 'no relay configured, and the local network is off: give --relay');
  emit({ type: 'route', via });
  const client = new RelayClient(relay, { signal: opts.signal, password: via === 'relay' ? opts.relayPassword : undefined });

  // a sender that has not started yet is waited for (the relay route; the local one waited above)
  let join = await joinWhenSenderThere(() => joinAsRecipient(client, code.channel, timeouts.joinRetryMs, opts.signal, early), {
    waitMs: via === 'relay' ? timeouts.waitForSenderMs : 0,
    relay: client.baseUrl.origin,
    signal: opts.signal,
    onWaiting: (untilMs) => emit({ type: 'waiting-for-sender', via, untilMs }),
  });
  // A dropped connection after the offer was accepted: meet the sender again and continue.
  const run: ReceiveRun = { secret: code.secret, sink, opts, timeouts, accepted: null, skipped: [], live: false, firstKeys: null, files: new Map(), resumed: 0, received: 0 };
  let keys: SessionKeys | null = null;
  let untilMs = 0;
  try {
    return await receiveSessions();
  } catch (e) {
    // failed for good: folders this transfer created that hold nothing to resume go
    await sink.removeEmptyFolders().catch(() => undefined);
    throw e;
  }

  async function receiveSessions(): Promise<ReceiveResult> {
    for (let attempt = 1; ; attempt++) {
      const before = run.received;
      try {
        return await receiveSession(client, join, keys, run);
      } catch (e) {
        if (!run.live || run.firstKeys === null || !isReconnectable(e) || timeouts.reconnectMs <= 0 || opts.signal?.aborted) throw e;
        // a session that moved data renews the time to meet again; one that did not, does not
        // (a link that keeps dropping, or a peer that drops on purpose, cannot keep us forever)
        if (run.received > before || untilMs === 0) untilMs = Date.now() + timeouts.reconnectMs;
        if (Date.now() >= untilMs) throw new TscCrocError('ERR_PEER_LOST', 'the connection keeps dropping without progress; run the same command again to resume', { cause: e });
        emit({ type: 'reconnecting', attempt, untilMs, reason: (e as Error).message });
        ({ join, keys } = await rejoin(e, 'recipient', client, run.firstKeys, join.curve, untilMs, opts.signal, timeouts));
        emit({ type: 'reconnected' });
      }
    }
  }
}

/** One run of a receive: what every session uses, and what carries over from one session to the next. */
interface ReceiveRun {
  readonly secret: string;
  readonly sink: FileSink;
  readonly opts: ReceiveOptions;
  readonly timeouts: typeof DEFAULT_TIMEOUTS;
  /** The offer the user accepted (a files offer written to disk: the only kind continued after a drop). */
  accepted: OfferMessage | null;
  /** The offered names the user kept (told to the sender again after a drop). */
  skipped: string[];
  /**
   * A record arrived after our accept: the sender has it (it sends nothing before), so both sides
   * know the transfer is under way and both will try to meet again after a drop.
   */
  live: boolean;
  /** The keys of the first session, from which both sides derive where to meet again. */
  firstKeys: SessionKeys | null;
  files: Map<string, CommittedFile>;
  /** Bytes an earlier, interrupted run had received (not sent again). */
  resumed: number;
  /** File data received in this run, over all sessions. */
  received: number;
}

function sameOffer(a: OfferMessage, b: OfferMessage): boolean {
  return (
    a.kind === b.kind && a.totalFiles === b.totalFiles && a.totalDirs === b.totalDirs && a.totalBytes === b.totalBytes &&
    a.names.length === b.names.length && a.names.every((n, i) => n === b.names[i])
  );
}

/** One session: the key agreement (unless a reconnection did it), the stapled connection, the transfer. */
async function receiveSession(client: RelayClient, join: JoinResponse, agreed: SessionKeys | null, runState: ReceiveRun): Promise<ReceiveResult> {
  const { secret, sink, opts, timeouts } = runState;
  const emit: EventSink = opts.onEvent ?? (() => {});
  return withSession(client, join, opts.signal, async (session) => {
    emit({ type: 'stage', stage: 'securing' });
    const keys = agreed ?? (await recipientPake(client, join, secret, timeouts));
    runState.firstKeys ??= keys;
    const stapled = await staple(client, join, timeouts.stapleMs, opts.signal);
    const channel = new SecureChannel(stapled.socket, stapled.leftover, keys.recipientToSender, keys.senderToRecipient, timeouts, stapled.tap);
    session.channel = channel;

    let state: RecipientState = initialRecipientState;
    /** Where bytes go when not to files: a text, piped data, or the one file of --stdout. */
    let target: StreamTarget | null = null;
    let current = { path: '', size: 0 };
    let bytes = 0;
    let totalBytes = 0;
    let kind: ContentKind = 'files';
    try {
      const run = async (input: RecipientInput, data?: Buffer[]) => {
        const step = recipientStep(state, input);
        state = step.state;
        for (const effect of step.effects) {
          switch (effect.kind) {
            case 'ask': {
              // what an interrupted run into this folder left, for the offered names
              const found = effect.offer.kind === 'files' && !opts.fileToStream ? await findHeld(sink.outDir, effect.offer) : null;
              if (found) sink.resumeFrom(effect.offer.names, offerId(effect.offer), found.held, found.resumable);
              const heldBytes = found?.have.reduce((n, h) => n + h.offset, 0) ?? 0;
              const before = runState.accepted;
              if (before !== null && !sameOffer(before, effect.offer)) throw new TscCrocError('ERR_PROTOCOL', 'the sender broke the protocol: it offered something else after reconnecting');
              // after a reconnection the user's earlier answer stands
              const decision = before !== null ? { accept: true, refusal: null, toStdout: false, skip: runState.skipped } : await decide(opts, sink, effect.offer, heldBytes);
              // what is under a kept name stays as it is: its journal and partials included
              const kept = new Set(decision.skip);
              const have = (found?.have ?? []).filter((h) => !kept.has(h.path.split('/', 1)[0]!));
              if (found && kept.size > 0) {
                const held = new Map([...found.held].filter(([path]) => !kept.has(path.split('/', 1)[0]!)));
                sink.resumeFrom(effect.offer.names.filter((n) => !kept.has(n)), offerId(effect.offer), held, found.resumable);
              }
              if (decision.accept && effect.offer.kind === 'files' && !decision.toStdout && before === null) {
                runState.accepted = effect.offer;
                runState.skipped = decision.skip;
                runState.resumed = have.reduce((n, h) => n + h.offset, 0);
                if (kept.size > 0) emit({ type: 'skipped', names: decision.skip.map(displayName) });
              }
              totalBytes = effect.offer.totalBytes;
              kind = effect.offer.kind;
              if (decision.accept) {
                if (effect.offer.kind === 'text') target = new StreamTarget(null, opts.signal);
                else if (effect.offer.kind === 'stream' || decision.toStdout) target = new StreamTarget(opts.streamTo!, opts.signal, decision.toStdout);
              }
              await run({ kind: 'decision', accept: decision.accept, have, skip: decision.skip });
              if (!decision.accept) {
                await channel.end();
                throw decision.refusal ?? new TscCrocError('ERR_DECLINED', 'you declined the transfer');
              }
              emit({ type: 'stage', stage: 'transferring', kind: effect.offer.kind, files: effect.offer.totalFiles });
              break;
            }
            case 'send':
              // `received`: the same news for the sender through the relay, should this connection
              // drop before it reads it (left with our goodbye: docs/protocol.md §7.1)
              if (effect.message.type === 'received') session.fin = bytesToHex(receivedProof(keys));
              await channel.sendMessage(effect.message);
              break;
            case 'plan':
              totalBytes = effect.plan.totalBytes; // what comes, now that the kept names are left out
              break;
            case 'make-dir':
              await sink.makeDir(effect.dir, effect.segments);
              break;
            case 'finish-dirs':
              await sink.finishDirs();
              await sink.finishAll();
              break;
            case 'open-file':
              current = { path: displayName(effect.file.path), size: effect.file.size };
              if (!target) await sink.open(effect.file, effect.segments); // with --stdout the one file goes to the target
              emit({ type: 'file-start', ...current, offset: effect.file.offset });
              if (effect.file.offset > 0) {
                bytes += effect.file.offset;
                emit({ type: 'progress', bytes, totalBytes });
              }
              break;
            case 'write':
            case 'write-stream':
              await (target ? target.write(data!) : sink.write(data!));
              bytes += (input as { length: number }).length;
              runState.received += (input as { length: number }).length;
              emit({ type: 'progress', bytes, totalBytes });
              break;
            case 'commit-file': {
              if (target) {
                emit({ type: 'file-done', path: current.path, size: current.size });
                break;
              }
              const done = await sink.commit();
              runState.files.set(done.path, done);
              emit({ type: 'file-done', path: current.path, size: done.size });
              break;
            }
            case 'write-batch': {
              const { files } = effect;
              let n = 0;
              for (const f of files) n += f.size;
              if (target) {
                // --stdout: the offer's one file, in a batch of one
                const f = files[0]!;
                emit({ type: 'file-start', path: displayName(f.path), size: f.size, offset: 0 });
                if (f.size > 0) await target.write(data!);
                emit({ type: 'file-done', path: displayName(f.path), size: f.size });
              } else {
                const done = await sink.writeBatch(files, effect.segments, data!);
                for (let i = 0; i < files.length; i++) {
                  const f = files[i]!;
                  // (admitted paths hold no control or format character: already display-safe)
                  const shown = f.path;
                  emit({ type: 'file-start', path: shown, size: f.size, offset: 0 });
                  runState.files.set(done[i]!.path, done[i]!);
                  emit({ type: 'file-done', path: shown, size: f.size });
                }
              }
              bytes += n;
              runState.received += n;
              emit({ type: 'progress', bytes, totalBytes });
              break;
            }
            case 'verify-stream':
              target!.verify(effect.sha256, 'the data');
              break;
            case 'finish':
              await channel.end();
              break;
          }
        }
      };
      for await (const rec of channel.records()) {
        // a cancel stops at once, not after what is already buffered
        if (opts.signal?.aborted) throw new TscCrocError('ERR_CANCELLED', 'cancelled');
        const message = rec.type === RecordType.MESSAGE ? parseMessage(recordPayload(rec), 'sender') : null;
        // anything but a keepalive after our accept: the sender read the accept
        if (runState.accepted !== null && message?.type !== 'keepalive') runState.live = true;
        if (rec.type === RecordType.DATA) await run({ kind: 'data', length: rec.length }, rec.chunks);
        else if (message !== null) await run({ kind: 'message', message });
        else await run({ kind: 'end' });
      }
      if (state.name !== 'finished') throw new TscCrocError('ERR_CONNECTION_LOST', 'the sender stopped before the transfer finished');
    } catch (e) {
      // Interrupted: partial data stays under its temporary name, never under the final one.
      // After hostile or corrupt input there is nothing worth keeping.
      await sink.abort(opts.signal?.aborted === true || !isTscCrocError(e) || !DROP_PARTIAL.includes(e.code));
      throw e;
    }
    await channel.close();
    const files = [...runState.files.values()];
    const resumedBytes = runState.resumed;
    // with --stdout the one file went to the stream, not to the output folder
    const toStream = kind === 'files' && (target as StreamTarget | null) !== null;
    emit({ type: 'done', kind, files: toStream ? 1 : files.length, bytes, resumedBytes, movedBytes: runState.received });
    const text = (target as StreamTarget | null)?.text(); // assigned inside run(), which narrowing does not see
    const skipped = runState.skipped.map(displayName);
    return text === undefined ? { files, bytes, resumedBytes, skipped } : { files, bytes, resumedBytes, skipped, text };
  });
}
