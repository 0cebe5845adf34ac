/**
 * The sending side: join the relay, show the code, run SPAKE2, then stream the files as
 * encrypted records. Hashes are computed while the data streams, so the code appears at once.
 */
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { checkRelativePath } from '../core/path.js';
import { formatCode, generateSecret, parseCode } from '../core/code-phrase.js';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import { MAX_OFFER_NAMES, MAX_TEXT_BYTES, PROTOCOL_VERSION, parseMessage, type FileMessage, type HaveEntry, type OfferMessage } from '../core/messages.js';
import { CHUNK_SIZE, ChunkHasher, digestOf } from '../core/chunk-digest.js';
import { MAX_RECORD_PAYLOAD, RecordType, recordPayload } from '../core/record.js';
import { DEFAULT_CURVE, type CurveName, type JoinResponse } from '../core/relay-api.js';
import { isReconnectable, rejoin } from './reconnect.js';
import { initialSenderState, senderStep, type SenderInput, type SenderState } from '../core/sender-machine.js';
import { DEFAULT_TIMEOUTS, type EventSink } from './events.js';
import { senderPake, type Route } from './pake.js';
import type { SessionKeys } from '../core/key-schedule.js';
import { RelayClient } from './relay-client.js';
import { SecureChannel } from './secure-channel.js';
import { closeReasonFor, withSession } from './session.js';
import { staple } from './tcp.js';
import { scanSources, wholeMs, type Entry, type Scan } from './walk.js';

export interface SendOptions {
  /**
   * The relay's HTTP address, e.g. http://relay.example:9009. Without one, the sender runs the
   * relay in its own process and announces the channel on the local network.
   */
  relay?: string | undefined;
  /** The relay's password, if its operator set one. */
  relayPassword?: string | undefined;
  /** Paths of files and folders to send (folders recursively, empty ones included). */
  files?: string[] | undefined;
  /** Or: a text message (at most 1 MiB), printed by the recipient. */
  text?: string | undefined;
  /** Or: data of unknown length, sent as it is read (e.g. process.stdin); no temporary copy. */
  stream?: AsyncIterable<Uint8Array | string> | undefined;
  /** Glob patterns to leave out, like .gitignore lines (repeatable --exclude). */
  exclude?: string[] | undefined;
  /** Leave out what .gitignore files ignore (nested ones too), and .git folders. */
  git?: boolean | undefined;
  /**
   * The local network: 'auto' (default) also runs a relay here and announces it, 'only' ignores
   * the configured relay, 'off' uses only the configured relay.
   */
  lan?: 'auto' | 'only' | 'off' | undefined;
  /** A code chosen by the user (`<channel>-<words>`); by default the relay picks the channel and we draw the words. */
  code?: string | undefined;
  curve?: CurveName | undefined;
  signal?: AbortSignal | undefined;
  onEvent?: EventSink | undefined;
  timeouts?: Partial<typeof DEFAULT_TIMEOUTS> | undefined;
}

export interface SendResult {
  code: string;
  files: number;
  bytes: number;
  /** File data actually sent: less than `bytes` when the recipient already held part of it. */
  sentBytes: number;
}

/** Bytes read from disk and sealed per record (256 KiB measured best here: npm run bench). */
const READ_CHUNK = 256 * 1024;

export async function send(opts: SendOptions): Promise<SendResult> {
  const emit: EventSink = opts.onEvent ?? (() => {});
  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  // The code appears at once: arguments are checked now (a typo fails before a code is shown),
  // the folders are walked while we join and wait for the other side.
  await checkArguments(opts);
  const planning = planContent(opts);
  planning.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
  const chosen = opts.code !== undefined ? parseCode(opts.code) : undefined;
  const secret = chosen?.secret ?? generateSecret();
  // Where the recipient can reach us: the configured relay, and (unless lan: 'off') a relay run
  // here on all interfaces, announced on the local network under the same channel name.
  const lan = opts.lan ?? 'auto';
  const useRelay = opts.relay !== undefined && lan !== 'only';
  if (!useRelay && lan === 'off') throw new TscCrocError('ERR_INVALID_ARGUMENT', 'no relay configured, and the local network is off: give --relay');
  const local = lan !== 'off' ? await (await import('../relay/index.js')).startRelay({ host: '0.0.0.0', port: 0, tcpPort: 0 }) : null;
  let announcement: { stop: () => void } | null = null;
  try {
    emit({ type: 'stage', stage: 'connecting' });
    const curve = opts.curve ?? DEFAULT_CURVE;
    const routes: Route[] = [];
    if (useRelay) {
      const client = new RelayClient(opts.relay!, { signal: opts.signal, password: opts.relayPassword });
      routes.push({ client, join: await client.join({ role: 'sender', curve, ...(chosen ? { channel: chosen.channel } : {}) }), via: 'relay' });
    }
    if (local) {
      const client = new RelayClient(`http://127.0.0.1:${local.httpPort}`, { signal: opts.signal });
      const channel = routes[0]?.join.channel ?? chosen?.channel;
      routes.push({ client, join: await client.join({ role: 'sender', curve, ...(channel ? { channel } : {}) }), via: 'lan' });
      announcement = (await import('./discovery.js')).announce(routes.at(-1)!.join.channel, local.httpPort);
    }
    const code = formatCode({ channel: routes[0]!.join.channel, secret });
    emit({ type: 'code', code });
    let won: Awaited<ReturnType<typeof senderPake>>;
    try {
      won = await senderPake(routes, secret, timeouts, () => emit({ type: 'stage', stage: 'waiting' }));
    } catch (raw) {
      const e = opts.signal?.aborted ? new TscCrocError('ERR_CANCELLED', 'cancelled') : raw;
      await Promise.all(routes.map((r) => r.client.close({ channel: r.join.channel, uuid: r.join.uuid }, closeReasonFor(e))));
      throw e;
    }
    emit({ type: 'route', via: won.route.via });
    return await transfer(won.route, won.keys, code, planning, opts, emit, timeouts);
  } finally {
    announcement?.stop();
    await local?.close();
  }
}

/**
 * The transfer over one or more sessions: when the connection drops after the recipient accepted
 * (and reconnecting is allowed), both sides meet again (src/transfer/reconnect.ts) and a new
 * session continues where the last one stopped: the recipient says what it holds, as after an
 * interrupted run, and what this run already read proves it without reading it again.
 */
async function transfer(
  route: Route,
  keys: SessionKeys,
  code: string,
  planning: Promise<Plan>,
  opts: SendOptions,
  emit: EventSink,
  timeouts: typeof DEFAULT_TIMEOUTS,
): Promise<SendResult> {
  const run: RunState = { code, planning, opts, emit, timeouts, ledger: new SentLedger(), sent: 0, accepted: false, allSent: false };
  let { join } = route;
  let sessionKeys = keys;
  let untilMs = 0;
  for (let attempt = 1; ; attempt++) {
    const before = run.sent;
    try {
      return await transferSession(route.client, join, sessionKeys, run);
    } catch (e) {
      // only a transfer under way is continued; a stream cannot be read again
      if (!run.accepted || !isReconnectable(e) || timeouts.reconnectMs <= 0 || opts.signal?.aborted || !(await planning).resumable) throw e;
      // a session that moved data renews the time to meet again; one that did not, does not
      // (a link that keeps dropping, or a peer that drops on purpose, cannot keep us forever)
      if (run.sent > before || untilMs === 0) untilMs = Date.now() + timeouts.reconnectMs;
      if (Date.now() >= untilMs) throw new TscCrocError('ERR_PEER_LOST', 'the connection keeps dropping without progress; run the same command again to resume', { cause: e });
      emit({ type: 'reconnecting', attempt, untilMs, reason: (e as Error).message });
      try {
        ({ join, keys: sessionKeys } = await rejoin(e, 'sender', route.client, keys, route.join.curve, untilMs, opts.signal, timeouts));
      } catch (lost) {
        // the recipient may have finished and gone: only its confirmation was lost
        if (run.allSent && isTscCrocError(lost, 'ERR_PEER_LOST'))
          throw new TscCrocError('ERR_PEER_LOST', 'everything was sent, but the connection dropped before the recipient confirmed it; check on the other side (running the same command again finds what arrived)', { cause: lost });
        throw lost;
      }
      emit({ type: 'reconnected' });
    }
  }
}

/** One run of a transfer: what every session uses, and what carries over from one session to the next. */
interface RunState {
  readonly code: string;
  readonly planning: Promise<Plan>;
  readonly opts: SendOptions;
  readonly emit: EventSink;
  readonly timeouts: typeof DEFAULT_TIMEOUTS;
  ledger: SentLedger;
  /** File data sent, over all sessions. */
  sent: number;
  /** The recipient accepted the offer (in some session). */
  accepted: boolean;
  /** Every file, `done` and END went out (in some session); only the recipient's `received` was missing. */
  allSent: boolean;
}

async function transferSession(client: RelayClient, join: JoinResponse, keys: SessionKeys, run: RunState): Promise<SendResult> {
  const { code, planning, opts, emit, timeouts } = run;
  return withSession(client, join, opts.signal, async (session) => {
    emit({ type: 'stage', stage: 'securing' });
    const stapled = await staple(client, join, timeouts.stapleMs, opts.signal);
    const channel = new SecureChannel(stapled.socket, stapled.leftover, keys.senderToRecipient, keys.recipientToSender, timeouts);
    session.channel = channel;

    const plan = await planning;
    const { offer } = plan;
    const { totalFiles, totalBytes } = offer;
    await channel.sendMessage(offer);

    // The recipient's messages are read concurrently, so that an error or a cancel from the
    // other side stops our sending at once.
    let state: SenderState = initialSenderState;
    const accepted = deferred();
    const finished = deferred();
    /** What the recipient holds from an earlier run, by path (at most one entry per offered file). */
    const have = new Map<string, HaveEntry>();
    const apply = (input: SenderInput) => {
      const step = senderStep(state, input);
      state = step.state;
      for (const e of step.effects) {
        if (e.kind === 'have') {
          for (const h of e.entries) {
            if (have.has(h.path) || have.size >= totalFiles) throw new TscCrocError('ERR_PROTOCOL', 'the recipient broke the protocol: more "have" entries than files offered');
            have.set(h.path, h);
          }
        } else (e.kind === 'start-sending' ? accepted : finished).resolve();
      }
    };
    const reader = (async () => {
      for await (const rec of channel.records()) {
        if (rec.type === RecordType.MESSAGE) apply({ kind: 'message', message: parseMessage(recordPayload(rec), 'recipient') });
        else if (rec.type === RecordType.DATA) apply({ kind: 'data' });
        else apply({ kind: 'end' });
      }
    })();
    let peerFailure: unknown = null;
    const readerDone = reader.then(
      // a reader that ends without error has seen END: `finished` is resolved by then, or never will be
      () => finished.reject(new TscCrocError('ERR_CONNECTION_LOST', 'the recipient closed the connection early')),
      (e: unknown) => {
        peerFailure = e;
        accepted.reject(e);
        finished.reject(e);
      },
    );
    /** Throw what the recipient reported, if it did, instead of carrying on. */
    const checkPeer = () => {
      if (peerFailure !== null) throw peerFailure;
    };

    await accepted.promise;
    run.accepted = true;
    run.allSent = false;
    emit({ type: 'stage', stage: 'transferring' });
    const { ledger } = run;
    let done = 0;
    try {
      const onBytes = (n: number, wasSent = true) => {
        checkPeer();
        done += n;
        if (wasSent) run.sent += n;
        emit({ type: 'progress', bytes: done, totalBytes });
      };
      if (plan.kind === 'files') {
        for (const entry of plan.scan.entries) {
          checkPeer();
          if (entry.kind === 'dir') {
            await channel.sendMessage({ type: 'dir', path: entry.path, mode: entry.mode, mtime: entry.mtimeMs });
            continue;
          }
          const digest = await sendFile(entry, have.get(entry.path), ledger, channel, emit, onBytes);
          await channel.sendMessage({ type: 'file-end', digest });
          emit({ type: 'file-done', path: entry.path, size: entry.size, digest });
        }
      } else {
        const { size, sha256 } = await streamData(plan.data, channel, onBytes);
        await channel.sendMessage({ type: 'stream-end', size, sha256 });
      }
      await channel.sendMessage({ type: 'done' });
      apply({ kind: 'sent' });
      run.allSent = true;
      await channel.end();
    } catch (e) {
      // the connection may die before the recipient's reason is read: give the reader a moment
      if (peerFailure === null && isTscCrocError(e, 'ERR_CONNECTION_LOST')) await Promise.race([readerDone, delay(1000)]);
      throw peerFailure ?? e;
    }
    await finished.promise;
    await channel.close();
    emit({ type: 'done', files: totalFiles, bytes: totalBytes, resumedBytes: Math.max(0, totalBytes - run.sent) });
    return { code, files: totalFiles, bytes: totalBytes, sentBytes: run.sent };
  });
}

function safeName(name: string): string[] {
  try {
    return checkRelativePath(name);
  } catch {
    return [];
  }
}

/** Fast checks of what was asked for, before anything is announced. */
async function checkArguments(opts: SendOptions): Promise<void> {
  const given = [opts.files !== undefined && opts.files.length > 0, opts.text !== undefined, opts.stream !== undefined].filter(Boolean).length;
  if (given !== 1) throw new TscCrocError('ERR_INVALID_ARGUMENT', 'send files and folders, a text, or piped data: exactly one of them');
  if (opts.text !== undefined) {
    const n = Buffer.byteLength(opts.text, 'utf8');
    if (n === 0) throw new TscCrocError('ERR_INVALID_ARGUMENT', 'the text is empty');
    if (n > MAX_TEXT_BYTES) throw new TscCrocError('ERR_INVALID_ARGUMENT', `a text is at most ${MAX_TEXT_BYTES} bytes: send a file instead`);
  }
  const files = opts.files ?? [];
  if (files.length > MAX_OFFER_NAMES) throw new TscCrocError('ERR_INVALID_ARGUMENT', `at most ${MAX_OFFER_NAMES} files or folders at once: send their folder instead`);
  const names = new Set<string>();
  for (const p of files) {
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new TscCrocError('ERR_INVALID_ARGUMENT', code === 'ENOENT' ? `no such file: ${p}` : `cannot read ${p} (${code})`);
    }
    if (!st.isFile() && !st.isDirectory()) throw new TscCrocError('ERR_INVALID_ARGUMENT', `${p} is neither a file nor a folder`);
    const name = basename(resolve(p));
    if (name === '' || safeName(name).length !== 1) throw new TscCrocError('ERR_INVALID_ARGUMENT', `${p} has no name that can be sent`);
    if (names.has(name)) throw new TscCrocError('ERR_INVALID_ARGUMENT', `two arguments are named ${name}`);
    names.add(name);
  }
}

/** What will be sent. `resumable`: it can be sent again from any point (files and texts, not piped data). */
type Plan =
  | { kind: 'files'; offer: OfferMessage; scan: Scan; resumable: true }
  | { kind: 'text' | 'stream'; offer: OfferMessage; data: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>; resumable: boolean };

/** What will be sent, and the offer that announces it (after checkArguments). */
async function planContent(opts: SendOptions): Promise<Plan> {
  const base = { type: 'offer', v: PROTOCOL_VERSION, totalFiles: 0, totalDirs: 0, names: [] } as const;
  if (opts.text !== undefined) {
    const bytes = Buffer.from(opts.text, 'utf8');
    return { kind: 'text', offer: { ...base, names: [], kind: 'text', totalBytes: bytes.length }, data: [bytes], resumable: false };
  }
  if (opts.stream !== undefined) return { kind: 'stream', offer: { ...base, names: [], kind: 'stream', totalBytes: 0 }, data: opts.stream, resumable: false };
  const scan = await scanSources(opts.files!, { exclude: opts.exclude ?? [], git: opts.git ?? false });
  if (scan.roots.length > MAX_OFFER_NAMES) throw new TscCrocError('ERR_INVALID_ARGUMENT', `at most ${MAX_OFFER_NAMES} files or folders at once: send their folder instead`);
  const offer: OfferMessage = {
    ...base,
    kind: 'files',
    totalFiles: scan.totalFiles,
    totalDirs: scan.entries.length - scan.totalFiles,
    totalBytes: scan.totalBytes,
    names: scan.roots,
  };
  return { kind: 'files', offer, scan, resumable: true };
}

/** Send a text or a stream as DATA records of at most READ_CHUNK bytes; returns its size and SHA-256. */
async function streamData(
  data: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>,
  channel: SecureChannel,
  onBytes: (n: number) => void,
): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const piece of data) {
      const buf = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      for (let off = 0; off < buf.length; off += READ_CHUNK) {
        const part = buf.subarray(off, off + READ_CHUNK);
        hash.update(part);
        size += part.length;
        await channel.send(RecordType.DATA, part);
        onBytes(part.length);
      }
    }
  } catch (e) {
    if (isTscCrocError(e)) throw e;
    throw new TscCrocError('ERR_IO', `cannot read the data to send (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  return { size, sha256: hash.digest('hex') };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // observed by its awaiter; avoid unhandled rejections when never awaited
  return { promise, resolve, reject };
}

/**
 * What the sender knows across reconnections within one run: the digests of files it sent and
 * the chunk hashes of the one it was sending, so that proving what the recipient holds after a
 * dropped connection needs no read of the file again.
 */
export class SentLedger {
  readonly done = new Map<string, string>();
  current: { path: string; hasher: ChunkHasher } | null = null;

  /** The chunk hashes of the first `offset` bytes of `path`, if this run already read that far. */
  prefix(path: string, offset: number): Uint8Array[] | null {
    const c = this.current;
    if (c === null || c.path !== path || offset % CHUNK_SIZE !== 0 || offset / CHUNK_SIZE > c.hasher.hashes.length) return null;
    return c.hasher.hashes.slice(0, offset / CHUNK_SIZE);
  }
}

/**
 * Send one file: decide where its data starts (0, or where the recipient's `have` entry says,
 * once the prefix of our file is proven to have the digest it holds), then the file message,
 * its DATA records and file-end with the digest of the whole file. Detects a file changing
 * under us. The file is read once, prefix included, when the prefix matches; when it does not
 * (the file changed since), the prefix is read twice: once to check it, once to send it.
 */
async function sendFile(
  src: Entry,
  held: HaveEntry | undefined,
  ledger: SentLedger,
  channel: SecureChannel,
  emit: EventSink,
  onBytes: (n: number, sent: boolean) => void,
): Promise<string> {
  let fh;
  try {
    fh = await open(src.abs, 'r');
  } catch (e) {
    throw new TscCrocError('ERR_IO', `cannot open ${src.abs} (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    const changed = () => new TscCrocError('ERR_SOURCE_CHANGED', `${src.abs} changed while it was being sent; send it again`);
    const unchanged = (st: BigIntStats) => Number(st.size) === src.size && wholeMs(st) === src.mtimeMs;
    if (!unchanged(await fh.stat({ bigint: true }))) throw changed();
    // Two buffers, reused: one is hashed and sealed while the next read fills the other.
    // Sealing copies the plaintext into ciphertext synchronously, so a buffer is free again
    // as soon as channel.send() has been called on it.
    const chunk = Math.min(READ_CHUNK, MAX_RECORD_PAYLOAD);
    const bufs = [Buffer.allocUnsafe(Math.min(chunk, src.size)), Buffer.allocUnsafe(Math.min(chunk, src.size))];
    const readAt = (b: Buffer, pos: number, end: number) => {
      const p = fh.read(b, 0, Math.min(b.length, end - pos), pos);
      p.catch(() => undefined); // a read ahead may fail while we wait on the socket: it is awaited below
      return p;
    };
    /** Read [from, to) through `each`, one buffer hashed or sent while the next one is read. */
    const pump = async (from: number, to: number, each: (b: Buffer) => Promise<void> | void) => {
      let at = from;
      let which = 0;
      let next = at < to ? readAt(bufs[0]!, at, to) : null;
      try {
        while (next !== null) {
          const { bytesRead } = await next;
          if (bytesRead === 0) throw changed(); // the file shrank
          const cur = bufs[which]!.subarray(0, bytesRead);
          at += bytesRead;
          which ^= 1;
          next = at < to ? readAt(bufs[which]!, at, to) : null;
          await each(cur);
        }
      } finally {
        await next?.catch(() => undefined); // never leave a read in flight on a handle we close
      }
    };

    // Where the data starts. What the recipient holds is proven against our own bytes: from what
    // this run already read (after a reconnection), or by reading that prefix once.
    let hasher = new ChunkHasher();
    let offset = 0;
    // a whole file is usable only as it is (same size); a partial one, as a prefix
    if (held !== undefined && (held.whole ? held.offset === src.size : held.offset <= src.size)) {
      const known = held.offset === src.size ? ledger.done.get(src.path) : undefined;
      const prefix = ledger.prefix(src.path, held.offset);
      if (known !== undefined) {
        if (known === held.digest) {
          // sent whole earlier in this run, and the recipient has it all: nothing to read or send
          const file: FileMessage = { type: 'file', path: src.path, size: src.size, offset: src.size, mode: src.mode, mtime: src.mtimeMs };
          emit({ type: 'file-start', path: src.path, size: src.size, offset: src.size });
          await channel.sendMessage(file);
          onBytes(src.size, false);
          return known;
        }
      } else if (prefix !== null) {
        if (digestOf(prefix, held.offset) === held.digest) {
          hasher = new ChunkHasher(prefix);
          offset = held.offset;
        }
      } else {
        emit({ type: 'stage', stage: 'checking' });
        await pump(0, held.offset, (b) => hasher.update(b));
        if (hasher.digest() === held.digest) offset = held.offset;
      }
    }
    ledger.current = { path: src.path, hasher };
    const file: FileMessage = { type: 'file', path: src.path, size: src.size, offset, mode: src.mode, mtime: src.mtimeMs };
    emit({ type: 'file-start', path: src.path, size: src.size, offset });
    await channel.sendMessage(file);
    onBytes(offset, false);
    if (hasher.length < offset) throw new Error('sendFile: the proven prefix is not hashed');
    // bytes read for the proof but not held by the recipient are hashed already: only sent
    let sentTo = offset;
    if (hasher.length > offset) {
      await pump(offset, hasher.length, async (b) => {
        await channel.send(RecordType.DATA, b);
        onBytes(b.length, true);
      });
      sentTo = hasher.length;
    }
    await pump(sentTo, src.size, async (b) => {
      hasher.update(b);
      await channel.send(RecordType.DATA, b);
      onBytes(b.length, true);
    });
    if (hasher.length !== src.size || !unchanged(await fh.stat({ bigint: true }))) throw changed();
    const digest = hasher.digest();
    ledger.done.set(src.path, digest);
    ledger.current = null;
    return digest;
  } catch (e) {
    if (isTscCrocError(e)) throw e;
    throw new TscCrocError('ERR_IO', `cannot read ${src.abs} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e });
  } finally {
    await fh.close();
  }
}
