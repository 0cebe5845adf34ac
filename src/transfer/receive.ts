/**
 * The receiving side: parse the code, join the relay, run SPAKE2, then let the recipient state
 * machine (src/core/recipient-machine.ts) check every message while FileSink writes the files.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { parseCode } from '../core/code-phrase.js';
import { TscCrocError, isTscCrocError, type ErrorCode } from '../core/errors.js';
import { parseMessage } from '../core/messages.js';
import { displayName } from '../core/path.js';
import { initialRecipientState, recipientStep, type RecipientInput, type RecipientState } from '../core/recipient-machine.js';
import { RecordType, recordPayload } from '../core/record.js';
import { DEFAULT_TIMEOUTS, type EventSink, type OfferInfo } from './events.js';
import { FileSink, type CommittedFile } from './file-sink.js';
import { recipientPake } from './pake.js';
import { RelayClient } from './relay-client.js';
import { SecureChannel } from './secure-channel.js';
import { withSession } from './session.js';
import { staple } from './tcp.js';

const broken = new WeakMap<NodeJS.WritableStream, unknown>();

/** Write with backpressure: resolve when the target can take more. A target that errors (EPIPE) fails the transfer. */
function writeTo(w: NodeJS.WritableStream, chunk: Buffer, signal: AbortSignal | undefined): Promise<void> {
  if (!broken.has(w)) {
    broken.set(w, null);
    w.on('error', (e) => broken.set(w, e)); // stays: a later error must never be an uncaught event
  }
  const failed = broken.get(w);
  if (failed) return Promise.reject(new TscCrocError('ERR_IO', `cannot write the received data (${(failed as NodeJS.ErrnoException).code ?? 'error'})`));
  if (w.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const cancelled = () => done(new TscCrocError('ERR_CANCELLED', 'cancelled'));
    const done = (e?: unknown) => {
      w.off('drain', done);
      w.off('error', done);
      signal?.removeEventListener('abort', cancelled);
      if (e instanceof TscCrocError) reject(e);
      else if (e) reject(new TscCrocError('ERR_IO', `cannot write the received data (${(e as NodeJS.ErrnoException).code ?? 'error'})`));
      else resolve();
    };
    w.on('drain', done);
    w.on('error', done);
    signal?.addEventListener('abort', cancelled, { once: true }); // a reader that stopped reading must not block a cancel
  });
}

/** Failures after which partial data is kept (under its temporary name) rather than deleted. */
const KEEP_PARTIAL: readonly ErrorCode[] = ['ERR_CONNECTION_LOST', 'ERR_CANCELLED', 'ERR_TIMEOUT', 'ERR_IO', 'ERR_RELAY_UNREACHABLE'];

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

export interface ReceiveOptions {
  relay: string;
  /** The relay's password, if its operator set one. */
  relayPassword?: string | undefined;
  /** The code the sender showed, as typed. */
  code: string;
  /** Folder to write into (default: the current folder). */
  outDir?: string | undefined;
  /**
   * What to do when offered names already exist in the output folder: true replaces files and
   * writes into folders; a function decides (it gets the existing names, display-safe); false
   * (the default) refuses the transfer before anything is written.
   */
  overwrite?: boolean | ((existing: string[]) => boolean | Promise<boolean>) | undefined;
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
  /** The message, when a text was sent. */
  text?: string;
}

export async function receive(opts: ReceiveOptions): Promise<ReceiveResult> {
  const emit: EventSink = opts.onEvent ?? (() => {});
  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const code = parseCode(opts.code);
  const sink = new FileSink(resolve(opts.outDir ?? '.'), opts.overwrite === true);
  await sink.checkOutDir();
  const client = new RelayClient(opts.relay, { signal: opts.signal, password: opts.relayPassword });

  emit({ type: 'stage', stage: 'connecting' });
  const join = await client.join({ role: 'recipient', channel: code.channel });

  return withSession(client, join, opts.signal, async (session) => {
    emit({ type: 'stage', stage: 'securing' });
    const keys = await recipientPake(client, join, code.secret, timeouts);
    const stapled = await staple(client, join, timeouts.stapleMs, opts.signal);
    const channel = new SecureChannel(stapled.socket, stapled.leftover, keys.recipientToSender, keys.senderToRecipient);
    session.channel = channel;

    let state: RecipientState = initialRecipientState;
    const streamHash = createHash('sha256');
    /** A text is collected (it is bounded by MAX_TEXT_BYTES); a stream goes to opts.streamTo. */
    let textChunks: Buffer[] | null = null;
    /** A single offered file goes to opts.streamTo instead of the disk (--stdout). */
    let fileToStream = false;
    let streamedName = '';
    const files: CommittedFile[] = [];
    let bytes = 0;
    let totalBytes = 0;
    try {
      const run = async (input: RecipientInput, data?: Buffer[]) => {
        const step = recipientStep(state, input);
        state = step.state;
        for (const effect of step.effects) {
          switch (effect.kind) {
            case 'ask': {
              const existing = opts.fileToStream ? [] : await sink.existing(effect.offer.names); // --stdout writes nothing to disk
              const offer: OfferInfo = {
                kind: effect.offer.kind,
                totalFiles: effect.offer.totalFiles,
                totalDirs: effect.offer.totalDirs,
                totalBytes: effect.offer.totalBytes,
                names: effect.offer.names.map(displayName),
                existing: existing.map(displayName),
              };
              totalBytes = offer.totalBytes;
              if (offer.kind === 'text') textChunks = [];
              emit({ type: 'offer', offer });
              let accept = false;
              let refusal: unknown = null;
              // a person may take a while: keep the relay from closing the idle connection meanwhile
              const keepalive = setInterval(() => void channel.sendMessage({ type: 'keepalive' }).catch(() => undefined), timeouts.keepaliveMs);
              try {
                if (opts.fileToStream && offer.kind === 'files') {
                  if (offer.totalFiles !== 1 || offer.totalDirs !== 0 || !opts.streamTo)
                    throw new TscCrocError('ERR_INVALID_ARGUMENT', 'only a single file can be written to stdout, and this offer is not one');
                  fileToStream = true;
                }
                if (offer.kind === 'stream' && !opts.streamTo)
                  throw new TscCrocError('ERR_INVALID_ARGUMENT', 'the sender offers piped data, but there is nowhere to write it (receive it with a stream target, e.g. the CLI writes it to stdout)');
                accept = opts.accept ? await untilAborted(Promise.resolve(opts.accept(offer)), opts.signal) : false;
                if (accept && existing.length > 0) {
                  // consent to replace (or add to) what is there, before anything is written
                  const o = opts.overwrite;
                  const allow = typeof o === 'function' ? await untilAborted(Promise.resolve(o(offer.existing)), opts.signal) : o === true;
                  if (!allow) {
                    const list = offer.existing.slice(0, 5).join(', ') + (existing.length > 5 ? ', ...' : '');
                    throw new TscCrocError('ERR_FILE_EXISTS', `already in ${sink.outDir}: ${list} (nothing was written; use --overwrite to replace)`);
                  }
                  sink.allowOverwrite(true);
                }
              } catch (e) {
                accept = false;
                refusal = e; // e.g. nobody at a terminal to confirm: decline, then report why
              } finally {
                clearInterval(keepalive);
              }
              await run({ kind: 'decision', accept });
              if (!accept) {
                await channel.end();
                throw refusal ?? new TscCrocError('ERR_DECLINED', 'you declined the transfer');
              }
              emit({ type: 'stage', stage: 'transferring' });
              break;
            }
            case 'send':
              await channel.sendMessage(effect.message);
              break;
            case 'make-dir':
              await sink.makeDir(effect.dir, effect.segments);
              break;
            case 'finish-dirs':
              await sink.finishDirs();
              break;
            case 'open-file':
              if (fileToStream) streamedName = displayName(effect.file.path);
              else await sink.open(effect.file, effect.segments);
              emit({ type: 'file-start', path: displayName(effect.file.path), size: effect.file.size });
              break;
            case 'write':
              if (fileToStream) {
                for (const c of data!) {
                  streamHash.update(c);
                  await writeTo(opts.streamTo!, c, opts.signal);
                }
              } else await sink.write(data!);
              bytes += (input as { length: number }).length;
              emit({ type: 'progress', bytes, totalBytes });
              break;
            case 'verify-file': {
              if (fileToStream) {
                if (streamHash.digest('hex') !== effect.sha256)
                  throw new TscCrocError('ERR_INTEGRITY', 'the file does not match the SHA-256 the sender announced');
                emit({ type: 'file-done', path: streamedName, size: bytes, sha256: effect.sha256 });
                break;
              }
              const done = await sink.commit(effect.sha256);
              files.push(done);
              emit({ type: 'file-done', path: displayName(done.path), size: done.size, sha256: done.sha256 });
              break;
            }
            case 'write-stream':
              for (const c of data!) {
                streamHash.update(c);
                if (textChunks) textChunks.push(c);
                else await writeTo(opts.streamTo!, c, opts.signal);
              }
              bytes += (input as { length: number }).length;
              emit({ type: 'progress', bytes, totalBytes });
              break;
            case 'verify-stream':
              if (streamHash.digest('hex') !== effect.sha256)
                throw new TscCrocError('ERR_INTEGRITY', 'the data does not match the SHA-256 the sender announced');
              break;
            case 'finish':
              await channel.end();
              break;
          }
        }
      };
      for await (const rec of channel.records()) {
        if (rec.type === RecordType.DATA) await run({ kind: 'data', length: rec.length }, rec.chunks);
        else if (rec.type === RecordType.MESSAGE) await run({ kind: 'message', message: parseMessage(recordPayload(rec), 'sender') });
        else await run({ kind: 'end' });
      }
      if (state.name !== 'finished') throw new TscCrocError('ERR_CONNECTION_LOST', 'the sender stopped before the transfer finished');
    } catch (e) {
      // Interrupted: partial data stays under its temporary name, never under the final one.
      // After hostile or corrupt input there is nothing worth keeping.
      await sink.abort(opts.signal?.aborted === true || (isTscCrocError(e) && KEEP_PARTIAL.includes(e.code)));
      throw e;
    }
    await channel.close();
    emit({ type: 'done', files: files.length, bytes });
    return textChunks ? { files, bytes, text: Buffer.concat(textChunks).toString('utf8') } : { files, bytes };
  });
}
