/**
 * The page as the recipient: the code, the relay's join, SPAKE2, the stapled stream, then the
 * recipient state machine of src/core (the same checks as the CLI's: names, paths, counts, sizes,
 * consent) with a Sink writing the files. A failure is told to the sender as an `error` message.
 */
import { parseCode } from '../core/code-phrase.js';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import { parseMessage, type OfferMessage } from '../core/messages.js';
import { createSha256 } from '../core/platform.js';
import { bytesToHex } from '../core/assert.js';
import { initialRecipientState, recipientStep, type RecipientInput, type RecipientState } from '../core/recipient-machine.js';
import { RecordType } from '../core/record-web.js';
import { fromUtf8 } from '../core/utf8.js';
import { recipientPake } from './pake.js';
import { WebRelay } from './relay.js';
import type { Sink } from './sinks.js';
import { WebChannel } from './stream.js';

export interface ReceiveEvents {
  stage(text: string): void;
  /** Ask the user: where to write (accepted), or null (declined). */
  ask(offer: OfferMessage): Promise<Sink | null>;
  progress(bytes: number, total: number): void;
  text(text: string): void;
}

/** Before the user chose where to write: nothing may be written (the machine allows nothing before the accept). */
const NO_SINK: Sink = {
  existing: async () => [],
  makeDir: async () => {},
  open: async () => {},
  write: async () => {},
  commit: async () => {},
  abort: async () => {},
};

export interface ReceiveResult {
  files: number;
  bytes: number;
}

export async function receive(origin: string, code: string, ev: ReceiveEvents, password?: string): Promise<ReceiveResult> {
  const { channel: name, secret } = parseCode(code);
  const relay = new WebRelay(origin, password);
  ev.stage('joining the relay');
  const join = await relay.join({ role: 'recipient', channel: name });
  ev.stage('securing the connection');
  const keys = await recipientPake(relay, join, secret);
  const channel = await WebChannel.open(origin, join, { send: keys.recipientToSender, receive: keys.senderToRecipient }, relay.password);
  ev.stage('waiting for the offer');
  let state: RecipientState = initialRecipientState;
  let sink: Sink = NO_SINK;
  let bytes = 0;
  let total = 0;
  let files = 0;
  let textParts: Uint8Array[] | null = null;
  const hash = createSha256();
  try {
    const run = async (input: RecipientInput, data?: Uint8Array) => {
      const step = recipientStep(state, input);
      state = step.state;
      for (const effect of step.effects) {
        switch (effect.kind) {
          case 'ask': {
            const o = effect.offer;
            if (o.kind === 'stream') {
              await run({ kind: 'decision', accept: false });
              await channel.end();
              throw new TscCrocError('ERR_DECLINED', 'the page cannot receive a stream of unknown length');
            }
            const chosen = await ev.ask(o);
            if (chosen !== null) sink = chosen;
            const accept = chosen !== null;
            total = o.totalBytes;
            if (o.kind === 'text') textParts = [];
            await run({ kind: 'decision', accept });
            if (!accept) {
              await channel.end();
              throw new TscCrocError('ERR_DECLINED', 'you declined the transfer');
            }
            ev.stage('receiving');
            break;
          }
          case 'send':
            await channel.sendMessage(effect.message);
            break;
          case 'plan':
            total = effect.plan.totalBytes;
            break;
          case 'make-dir':
            await sink.makeDir(effect.segments);
            break;
          case 'open-file':
            await sink.open(effect.segments, effect.file.size, effect.file.mtime);
            break;
          case 'write':
            await sink.write(data!);
            bytes += data!.length;
            ev.progress(bytes, total);
            break;
          case 'write-stream':
            textParts!.push(data!.slice());
            hash.update(data!);
            bytes += data!.length;
            break;
          case 'commit-file':
            await sink.commit();
            files++;
            break;
          case 'write-batch': {
            // small files carried whole in one DATA record (protocol v3 "batch"): each is
            // written and committed in turn, from its slice of the record (exactly the announced sum)
            let at = 0;
            for (let i = 0; i < effect.files.length; i++) {
              const f = effect.files[i]!;
              await sink.open(effect.segments[i]!, f.size, f.mtime);
              if (f.size > 0) await sink.write(data!.subarray(at, at + f.size));
              await sink.commit();
              at += f.size;
              files++;
            }
            bytes += at;
            ev.progress(bytes, total);
            break;
          }
          case 'verify-stream':
            if (bytesToHex(hash.digest()) !== effect.sha256) throw new TscCrocError('ERR_INTEGRITY', 'the text does not match the SHA-256 the sender announced');
            break;
          case 'finish-dirs':
            await sink.finish?.(); // every file is in: a zip hands its download over now
            break;
          case 'finish':
            await channel.end();
            break;
        }
      }
    };
    for await (const rec of channel.records()) {
      if (rec.type === RecordType.DATA) await run({ kind: 'data', length: rec.payload.length }, rec.payload);
      else if (rec.type === RecordType.MESSAGE) await run({ kind: 'message', message: parseMessage(rec.payload, 'sender') });
      else await run({ kind: 'end' });
    }
    if (state.name !== 'finished') throw new TscCrocError('ERR_CONNECTION_LOST', 'the sender stopped before the transfer finished');
  } catch (e) {
    await sink.abort();
    // tell the sender why, as the CLI does (a decline was told already)
    if (!isTscCrocError(e, 'ERR_DECLINED')) {
      const err = isTscCrocError(e) ? e : new TscCrocError('ERR_PEER_ERROR', 'the page failed');
      await Promise.race([
        channel.sendMessage({ type: 'error', code: err.code, message: err.message.slice(0, 1000) }).then(() => channel.end()),
        new Promise((r) => setTimeout(r, 2000)),
      ]).catch(() => undefined);
    }
    channel.abort();
    throw e;
  }
  await channel.close();
  if (textParts !== null) {
    const all = new Uint8Array(bytes);
    let off = 0;
    for (const p of textParts as Uint8Array[]) {
      all.set(p, off);
      off += p.length;
    }
    ev.text(fromUtf8(all));
  }
  return { files, bytes };
}
