/**
 * The page as the sender: the files the user picked (a folder keeps its paths), an offer, the
 * relay's join and a fresh code, SPAKE2, the stapled stream, then the sender state machine of
 * src/core; files are read as streams, 1 MiB records at a time.
 */
import { formatCode, generateSecret } from '../core/code-phrase.js';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import { PROTOCOL_VERSION, parseMessage, type OfferMessage } from '../core/messages.js';
import { checkRelativePath } from '../core/path.js';
import { MAX_RECORD_PAYLOAD } from '../core/record-framing.js';
import { RecordType } from '../core/record-web.js';
import { senderStart, senderStep, type SenderInput, type SenderState } from '../core/sender-machine.js';
import type { Picked } from './drop.js';
import { senderPake } from './pake.js';
import { WebRelay } from './relay.js';
import { WebChannel } from './stream.js';

export interface SendEvents {
  stage(text: string): void;
  code(code: string): void;
  failedAttempt(n: number, max: number): void;
  progress(bytes: number, total: number): void;
}

interface Entry {
  path: string;
  file: File;
}

/** The offer for what was picked or dropped: relative paths kept, folders (empty ones too) created first; paths unique. */
export function planOffer(picked: Picked): { offer: OfferMessage; entries: Entry[]; dirs: string[] } {
  const entries: Entry[] = picked.files;
  const names: string[] = [];
  const dirs = new Set<string>();
  const seen = new Set<string>();
  const top = (segments: string[]): void => {
    if (!names.includes(segments[0]!)) names.push(segments[0]!);
  };
  for (const d of picked.dirs) {
    const segments = checkRelativePath(d);
    top(segments);
    for (let i = 1; i <= segments.length; i++) dirs.add(segments.slice(0, i).join('/'));
  }
  for (const e of entries) {
    const segments = checkRelativePath(e.path);
    if (seen.has(e.path) || dirs.has(e.path)) throw new TscCrocError('ERR_INVALID_ARGUMENT', `${e.path} is picked twice`);
    seen.add(e.path);
    top(segments);
    for (let i = 1; i < segments.length; i++) dirs.add(segments.slice(0, i).join('/'));
  }
  for (const d of dirs) if (seen.has(d)) throw new TscCrocError('ERR_INVALID_ARGUMENT', `${d} is picked twice`);
  const dirList = [...dirs].sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1));
  const totalBytes = entries.reduce((n, e) => n + e.file.size, 0);
  return {
    offer: { type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: entries.length, totalDirs: dirList.length, totalBytes, names },
    entries,
    dirs: dirList,
  };
}

export async function send(origin: string, picked: Picked, ev: SendEvents, password?: string): Promise<void> {
  const { offer, entries, dirs } = planOffer(picked);
  const relay = new WebRelay(origin, password);
  ev.stage('joining the relay');
  const join = await relay.join({ role: 'sender' });
  const secret = generateSecret();
  ev.code(formatCode({ channel: join.channel, secret }));
  ev.stage('waiting for the recipient');
  const keys = await senderPake(relay, join, secret, ev.failedAttempt);
  const channel = await WebChannel.open(origin, join, { send: keys.senderToRecipient, receive: keys.recipientToSender }, relay.password);
  ev.stage('waiting for the recipient to accept');
  let state: SenderState = senderStart(offer);
  try {
    await channel.sendMessage(offer);
    const sendAll = async (): Promise<void> => {
      ev.stage('sending');
      const now = Date.now();
      for (const d of dirs) await channel.sendMessage({ type: 'dir', path: d, mode: 0o755, mtime: now });
      let bytes = 0;
      for (const e of entries) {
        await channel.sendMessage({ type: 'file', path: e.path, size: e.file.size, offset: 0, mode: 0o644, mtime: Math.max(0, Math.floor(e.file.lastModified)) });
        let sent = 0;
        const reader = e.file.stream().getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (let off = 0; off < value.length; off += MAX_RECORD_PAYLOAD) {
            const piece = value.subarray(off, off + MAX_RECORD_PAYLOAD);
            if (sent + piece.length > e.file.size) throw new TscCrocError('ERR_SOURCE_CHANGED', `${e.path} grew while it was sent`);
            await channel.send(RecordType.DATA, piece);
            sent += piece.length;
            bytes += piece.length;
            ev.progress(bytes, offer.totalBytes);
          }
        }
        if (sent !== e.file.size) throw new TscCrocError('ERR_SOURCE_CHANGED', `${e.path} shrank while it was sent`);
        await channel.sendMessage({ type: 'file-end' });
      }
      await channel.sendMessage({ type: 'done' });
      await channel.end();
    };
    const step = async (input: SenderInput): Promise<void> => {
      const r = senderStep(state, input);
      state = r.state;
      for (const effect of r.effects) {
        if (effect.kind === 'start-sending') {
          if (effect.skipped.length > 0) throw new TscCrocError('ERR_PROTOCOL', 'the recipient broke the protocol: it skipped names the page offered');
          await sendAll();
          await step({ kind: 'sent' });
          ev.stage('waiting for the recipient to confirm');
        } else if (effect.kind === 'finish') await channel.close();
        // 'have': the page keeps no partial files to resume from; it sends everything from 0
      }
    };
    for await (const rec of channel.records()) {
      if (rec.type === RecordType.MESSAGE) await step({ kind: 'message', message: parseMessage(rec.payload, 'recipient') });
      else if (rec.type === RecordType.DATA) await step({ kind: 'data' });
      else await step({ kind: 'end' });
    }
    if (state.name !== 'finished') throw new TscCrocError('ERR_CONNECTION_LOST', 'the recipient stopped before the transfer finished');
  } catch (e) {
    if (!isTscCrocError(e, 'ERR_DECLINED')) {
      const err = isTscCrocError(e) ? e : new TscCrocError('ERR_PEER_ERROR', 'the page failed');
      await Promise.race([channel.sendMessage({ type: 'error', code: err.code, message: err.message.slice(0, 1000) }), new Promise((r) => setTimeout(r, 2000))]).catch(() => undefined);
    }
    channel.abort();
    throw e;
  }
}
