/**
 * The sending side: walk the files, join the relay, show the code, run SPAKE2, then stream the files as
 * encrypted records: large files read 1 MiB at a time into two reused buffers, each sealed as
 * one record; files of at most 64 KiB gathered whole in batches (one `batch` message and one
 * record for up to 1024 of them, protocol v3); other files under 1 MiB read ahead a few at a
 * time, each sent as one record.
 */
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import * as fs from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { checkRelativePath, displayName } from '../core/path.js';
import { formatCode, generateSecret, parseCode } from '../core/code-phrase.js';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import { MAX_BATCH_BYTES, MAX_BATCH_FILES, MAX_OFFER_NAMES, MAX_TEXT_BYTES, PROTOCOL_VERSION, parseMessage, type BatchEntry, type FileMessage, type HaveEntry, type OfferMessage } from '../core/messages.js';
import { MAX_RECORD_PAYLOAD, RecordType, recordPayload } from '../core/record.js';
import { DEFAULT_CURVE, type CurveName, type JoinResponse } from '../core/relay-api.js';
import { isReconnectable, recipientProof, rejoin, type Rejoined } from './reconnect.js';
import { senderStart, senderStep, type SenderInput, type SenderState } from '../core/sender-machine.js';
import { DEFAULT_TIMEOUTS, relayHost, type ContentKind, type EventSink } from './events.js';
import { senderPake, type Route } from './pake.js';
import type { SessionKeys } from '../core/key-schedule.js';
import { RelayClient } from './relay-client.js';
import { SecureChannel } from './secure-channel.js';
import { closeReasonFor, withSession } from './session.js';
import { staple } from './tcp.js';
import { RESUME_MIN_BYTES, digestPrefix } from './resume-store.js';
import { scanSources, wholeMs, type Entry, type EntryList, type Scan } from './walk.js';

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
   * Leave out files and folders that cannot be read (a 'left-out' event lists them); without
   * it, one fails the send with ERR_INVALID_ARGUMENT before the code is shown.
   */
  skipUnreadable?: boolean | undefined;
  /**
   * The local network: 'auto' (default) also runs a relay here and announces it, 'only' ignores
   * the configured relay, 'off' uses only the configured relay.
   */
  lan?: 'auto' | 'only' | 'off' | undefined;
  /** Interfaces (names or IPv4 addresses) the local-network announcement uses; default: all. */
  interfaces?: readonly string[] | undefined;
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

/** Bytes read from disk and sealed per record: the largest record. */
const READ_CHUNK = MAX_RECORD_PAYLOAD;
/** Files smaller than this are read whole, ahead of their turn, and sent as one record. */
const SMALL_FILE_BYTES = RESUME_MIN_BYTES;
/** Small files read ahead at most (files, bytes). */
const READ_AHEAD_FILES = 32;
const READ_AHEAD_BYTES = 4 * 1024 * 1024;
/** Small files up to this size are read with synchronous calls (readSmallSync). */
const SYNC_READ_MAX = 64 * 1024;
/** Files up to this size go whole in batches (protocol v3), read with synchronous calls. */
const BATCH_FILE_MAX = SYNC_READ_MAX;
/**
 * A batch's `batch` message is kept under this many bytes of JSON (a record holds 1 MiB): each
 * entry is counted at its worst (every character of its path escaped as \uXXXX) plus its numbers.
 */
const BATCH_JSON_MAX = 768 * 1024;
/** Files sent at most between two turns of the event loop. */
const FILES_PER_TURN = 32;

export async function send(opts: SendOptions): Promise<SendResult> {
  const emit: EventSink = opts.onEvent ?? (() => {});
  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  // Arguments are checked and the folders walked before a code is shown: a typo, or a file that
  // cannot be read, fails now, not after the recipient accepted and received part of the files.
  await checkArguments(opts);
  const planning = Promise.resolve(await planContent(opts, emit));
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
    emit({ type: 'stage', stage: 'connecting', relay: useRelay ? relayHost(opts.relay!) : undefined, local: local !== null });
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
      announcement = (await import('./discovery.js')).announce(routes.at(-1)!.join.channel, local.httpPort, opts.interfaces);
    }
    const code = formatCode({ channel: routes[0]!.join.channel, secret });
    // a relay that serves the browser page: the recipient may also open a link (the code in its
    // fragment, which browsers never send to a server)
    const first = routes[0]!;
    emit({ type: 'code', code, ...(first.via === 'relay' && first.join.web === true ? { web: `${first.client.baseUrl.origin}/#${code}` } : {}) });
    let won: Awaited<ReturnType<typeof senderPake>>;
    try {
      won = await senderPake(
        routes,
        secret,
        timeouts,
        () => emit({ type: 'stage', stage: 'waiting' }),
        (attempt, maxAttempts) => emit({ type: 'wrong-code', attempt, maxAttempts }),
      );
    } catch (raw) {
      // our own channel gone from the relay (it, or its store, restarted and lost it): the
      // recipient-side wording ("no sender is waiting on that channel") would mislead here
      const e = opts.signal?.aborted
        ? new TscCrocError('ERR_CANCELLED', 'cancelled')
        : isTscCrocError(raw, 'ERR_CHANNEL_NOT_FOUND')
          ? new TscCrocError('ERR_CHANNEL_NOT_FOUND', "the relay no longer has this transfer's channel (the relay or its store restarted): send again for a new code", { cause: raw })
          : raw;
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
 * interrupted run, and we prove it by reading that prefix of our file once.
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
  const run: RunState = { code, planning, opts, emit, timeouts, sent: 0, accepted: false, allSent: false, skipReported: false };
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
      // Everything was sent and only `received` is missing: the recipient may have it all and be
      // gone. Its proof on the relay (fin, docs/protocol.md §7.1) ends the transfer as `received`
      // would; meanwhile we try to meet again, as for any drop.
      const stop = new AbortController();
      const signal = opts.signal === undefined ? stop.signal : AbortSignal.any([opts.signal, stop.signal]);
      const proven = run.allSent && run.whole !== undefined ? recipientProof(route.client, join, sessionKeys, untilMs, signal) : null;
      try {
        // its own client: a rejoin that loses the race to the proof is cancelled, requests included
        const rejoining = rejoin(e, 'sender', proven === null ? route.client : route.client.withSignal(signal), keys, route.join.curve, untilMs, signal, timeouts);
        rejoining.catch(() => undefined); // lost the race to a proof (cancelled), or awaited below
        const outcome: Rejoined | 'proven' = await Promise.race<Rejoined | 'proven'>([
          rejoining,
          ...(proven === null ? [] : [proven.then((ok): Promise<Rejoined | 'proven'> | 'proven' => (ok ? 'proven' : rejoining))]),
        ]);
        if (outcome === 'proven') {
          const { kind, files, bytes } = run.whole!;
          emit({ type: 'reconnected' });
          emit({ type: 'done', kind, files, bytes, resumedBytes: Math.max(0, bytes - run.sent), movedBytes: run.sent });
          return { code, files, bytes, sentBytes: run.sent };
        }
        ({ join, keys: sessionKeys } = outcome);
      } catch (lost) {
        // the recipient may have finished and gone: only its confirmation was lost
        if (run.allSent && isTscCrocError(lost, 'ERR_PEER_LOST'))
          throw new TscCrocError('ERR_PEER_LOST', 'everything was sent, but the connection dropped before the recipient confirmed it; check on the other side (running the same command again finds what arrived)', { cause: lost });
        throw lost;
      } finally {
        stop.abort(); // the proof's reads, or a rejoin that lost the race
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
  /** File data sent, over all sessions. */
  sent: number;
  /** The recipient accepted the offer (in some session). */
  accepted: boolean;
  /** Every file, `done` and END went out (in some session); only the recipient's `received` was missing. */
  allSent: boolean;
  /** What a session that sent everything would report (set with allSent), for a confirmation read from the relay. */
  whole?: { kind: ContentKind; files: number; bytes: number };
  /** The names the recipient keeps were reported (once per run: it says them again after a reconnection). */
  skipReported: boolean;
}

async function transferSession(client: RelayClient, join: JoinResponse, keys: SessionKeys, run: RunState): Promise<SendResult> {
  const { code, planning, opts, emit, timeouts } = run;
  return withSession(client, join, opts.signal, async (session) => {
    emit({ type: 'stage', stage: 'securing' });
    const stapled = await staple(client, join, timeouts.stapleMs, opts.signal);
    const channel = new SecureChannel(stapled.socket, stapled.leftover, keys.senderToRecipient, keys.recipientToSender, timeouts, stapled.tap);
    session.channel = channel;

    const plan = await planning;
    const { offer } = plan;
    await channel.sendMessage(offer);

    // The recipient's messages are read concurrently, so that an error or a cancel from the
    // other side stops our sending at once.
    let state: SenderState = senderStart(offer);
    const accepted = deferred();
    const finished = deferred();
    /** What the recipient holds from an earlier run, by path (the machine allows one entry per path, totalFiles in all). */
    const have = new Map<string, HaveEntry>();
    /** Offered names the recipient keeps (its `skip`): nothing under them is sent. */
    let skipped: ReadonlySet<string> = new Set();
    const apply = (input: SenderInput) => {
      const step = senderStep(state, input);
      state = step.state;
      for (const e of step.effects) {
        if (e.kind === 'have') for (const h of e.entries) have.set(h.path, h);
        else if (e.kind === 'start-sending') {
          skipped = new Set(e.skipped);
          accepted.resolve();
        } else finished.resolve();
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
    // After a skip: what is sent instead of the offer, announced first (protocol §6.1)
    const kept = (e: Entry) => skipped.size === 0 || !skipped.has(e.path.split('/', 1)[0]!);
    let { totalFiles, totalBytes } = offer;
    if (skipped.size > 0 && plan.kind === 'files') {
      let totalDirs = 0;
      totalFiles = 0;
      totalBytes = 0;
      for (const e of plan.scan.entries) {
        if (!kept(e)) continue;
        if (e.kind === 'dir') totalDirs++;
        else {
          totalFiles++;
          totalBytes += e.size;
        }
      }
      await channel.sendMessage({ type: 'plan', totalFiles, totalDirs, totalBytes });
      if (!run.skipReported) emit({ type: 'skipped', names: [...skipped] });
      run.skipReported = true;
    }
    emit({ type: 'stage', stage: 'transferring', kind: plan.kind, files: totalFiles });
    let done = 0;
    try {
      const onBytes = (n: number, wasSent = true) => {
        checkPeer();
        done += n;
        if (wasSent) run.sent += n;
        emit({ type: 'progress', bytes: done, totalBytes });
      };
      if (plan.kind === 'files') {
        const { entries } = plan.scan;
        // Files of at most BATCH_FILE_MAX bytes that the recipient does not hold go whole in
        // batches (protocol v3: one `batch` message and one DATA record for up to
        // MAX_BATCH_FILES of them); other files under 1 MiB are read ahead, a few at a time.
        const batchable = (e: Entry) => e.kind === 'file' && e.size <= BATCH_FILE_MAX && !have.has(e.path) && kept(e);
        const ahead = new ReadAhead(entries, (e) => e.kind === 'file' && e.size < SMALL_FILE_BYTES && !batchable(e) && !have.has(e.path) && kept(e));
        const bufs = new ReadBuffers();
        const batch = new Batch();
        const flush = async () => {
          if (batch.files.length === 0) return;
          const { files, bytes } = batch;
          for (const f of files) emit({ type: 'file-start', path: f.path, size: f.size, offset: 0 });
          // both sealed in this turn, nothing between them (the payload is copied by the seal)
          const message = channel.sendMessage({ type: 'batch', files });
          message.catch(() => undefined); // awaited just below
          await channel.send(RecordType.DATA, batch.data());
          await message;
          batch.clear();
          for (const f of files) emit({ type: 'file-done', path: f.path, size: f.size });
          onBytes(bytes, true);
          // the batch was read with synchronous calls: give the event loop a turn, so the
          // corked socket writes and the peer's messages are read
          await new Promise<void>((r) => setImmediate(r));
        };
        let sinceTurn = 0;
        try {
          for (let i = 0; i < entries.length; i++) {
            const entry = entries.get(i);
            checkPeer();
            if (!kept(entry)) continue; // under a name the recipient keeps
            if (entry.kind === 'dir') {
              await channel.sendMessage({ type: 'dir', path: entry.path, mode: entry.mode, mtime: entry.mtimeMs });
              continue;
            }
            if (batchable(entry)) {
              if (!batch.fits(entry)) await flush();
              batch.add(entry);
              continue;
            }
            await flush();
            const whole = ahead.take(i);
            if (whole !== null) {
              const plain = await whole;
              emit({ type: 'file-start', path: entry.path, size: entry.size, offset: 0 });
              await channel.sendMessage({ type: 'file', path: entry.path, size: entry.size, offset: 0, mode: entry.mode, mtime: entry.mtimeMs });
              if (entry.size > 0) await channel.send(RecordType.DATA, plain);
              onBytes(entry.size, true);
            } else await sendFile(entry, have.get(entry.path), bufs, channel, emit, onBytes);
            await channel.sendMessage({ type: 'file-end' });
            emit({ type: 'file-done', path: entry.path, size: entry.size });
            // Small files read synchronously never wait on the event loop: give it a turn now
            // and then, so the corked socket writes what was sealed (its queue is bounded in
            // bytes, not in records: tiny files would pile up) and the peer's messages are read.
            if (++sinceTurn >= FILES_PER_TURN) {
              sinceTurn = 0;
              await new Promise<void>((r) => setImmediate(r));
            }
          }
          await flush();
        } finally {
          await ahead.stop();
        }
      } else {
        const { size, sha256 } = await streamData(plan.data, channel, onBytes);
        await channel.sendMessage({ type: 'stream-end', size, sha256 });
      }
      await channel.sendMessage({ type: 'done' });
      apply({ kind: 'sent' });
      run.allSent = true;
      run.whole = { kind: plan.kind, files: totalFiles, bytes: totalBytes };
      await channel.end();
    } catch (e) {
      // the connection may die before the recipient's reason is read: give the reader a moment
      if (peerFailure === null && isTscCrocError(e, 'ERR_CONNECTION_LOST')) await Promise.race([readerDone, delay(1000)]);
      throw peerFailure ?? e;
    }
    await finished.promise;
    await channel.close();
    const bytes = plan.kind === 'stream' ? done : totalBytes; // a stream's offer says 0 (unknown)
    emit({ type: 'done', kind: plan.kind, files: totalFiles, bytes, resumedBytes: Math.max(0, bytes - run.sent), movedBytes: run.sent });
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

/** A walk that takes longer than this is shown ('reading' events)... */
const READING_SHOWN_AFTER_MS = 1000;
/** ...again at most this often. */
const READING_EVERY_MS = 5000;
/** Paths a 'left-out' event names at most (its count says how many there were). */
const LEFT_OUT_NAMED = 100;

/** Walk the files and folders to send, reporting a long walk and what was left out of it. */
async function walk(opts: SendOptions, emit: EventSink): Promise<Scan> {
  const started = Date.now();
  let shown = 0;
  const scan = await scanSources(opts.files!, {
    exclude: opts.exclude ?? [],
    git: opts.git ?? false,
    skipUnreadable: opts.skipUnreadable ?? false,
    onProgress: (n) => {
      if (opts.signal?.aborted) throw new TscCrocError('ERR_CANCELLED', 'cancelled'); // a long walk stops on Ctrl-C
      const now = Date.now();
      if (now - started < READING_SHOWN_AFTER_MS || now - shown < READING_EVERY_MS) return;
      shown = now;
      emit({ type: 'reading', entries: n, done: false });
    },
  });
  if (shown > 0) emit({ type: 'reading', entries: scan.entries.length, done: true });
  for (const reason of ['unreadable', 'symlink', 'special', 'too-deep'] as const) {
    const paths = scan.skipped.filter((s) => s.reason === reason).map((s) => displayName(s.path));
    if (paths.length > 0) emit({ type: 'left-out', reason, paths: paths.slice(0, LEFT_OUT_NAMED), count: paths.length });
  }
  return scan;
}

/** What will be sent, and the offer that announces it (after checkArguments). */
async function planContent(opts: SendOptions, emit: EventSink): Promise<Plan> {
  const base = { type: 'offer', v: PROTOCOL_VERSION, totalFiles: 0, totalDirs: 0, names: [] } as const;
  if (opts.text !== undefined) {
    const bytes = Buffer.from(opts.text, 'utf8');
    return { kind: 'text', offer: { ...base, names: [], kind: 'text', totalBytes: bytes.length }, data: [bytes], resumable: false };
  }
  if (opts.stream !== undefined) return { kind: 'stream', offer: { ...base, names: [], kind: 'stream', totalBytes: 0 }, data: opts.stream, resumable: false };
  const scan = await walk(opts, emit);
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

/** Two reused read buffers of one record each. */
class ReadBuffers {
  #bufs: Buffer[] | null = null;

  get(): Buffer[] {
    this.#bufs ??= [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)];
    return this.#bufs;
  }
}

function sourceChanged(src: Entry): TscCrocError {
  return new TscCrocError('ERR_SOURCE_CHANGED', `${src.abs} changed while it was being sent; send it again`);
}

/** The file still has the size and the whole-millisecond mtime the walk recorded. */
function unchanged(src: Entry, st: BigIntStats): boolean {
  return Number(st.size) === src.size && wholeMs(st) === src.mtimeMs;
}

/**
 * A file the walk could read that cannot be opened now: it became unreadable (or went) after the
 * walk, mid-transfer.
 */
function openError(src: Entry, e: unknown): TscCrocError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  const why =
    code === 'EACCES' || code === 'EPERM'
      ? 'it became unreadable after the transfer started; fix its permissions and run the same command again (what arrived is kept), or leave it out with --skip-unreadable'
      : code === 'ENOENT'
        ? 'it was removed after the transfer started'
        : 'it could be read when the transfer started';
  return new TscCrocError('ERR_IO', `cannot open ${displayName(src.abs)} (${code}): ${why}`, { cause: e });
}

function readError(src: Entry, e: unknown): unknown {
  if (isTscCrocError(e)) return e;
  return new TscCrocError('ERR_IO', `cannot read ${src.abs} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e });
}

/**
 * A small file read whole, the payload of its one DATA record. The walk's
 * stat is the "before"; after the read, the size and mtime must still be those (one fstat).
 * One byte more than the size is asked for, so a file that grew is seen.
 */
function readSmall(src: Entry): Promise<Buffer> {
  if (src.size <= SYNC_READ_MAX) {
    try {
      return Promise.resolve(readSmallSync(src));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  // plain fs calls on a descriptor: for thousands of small files, FileHandle's promise per call
  // costs more than the calls themselves
  return new Promise((resolve, reject) => {
    fs.open(src.abs, 'r', (err, fd) => {
      if (err) return reject(openError(src, err));
      const done = (e: unknown, result?: Buffer) => fs.close(fd, () => (e ? reject(readError(src, e)) : resolve(result!)));
      const buf = Buffer.allocUnsafe(src.size + 1);
      let got = 0;
      const next = () =>
        fs.read(fd, buf, got, src.size + 1 - got, got, (e, n) => {
          if (e) return done(e);
          got += n;
          if (n > 0 && got <= src.size) return next();
          if (got !== src.size) return done(sourceChanged(src));
          fs.fstat(fd, { bigint: true }, (e2, st) => {
            if (e2) return done(e2);
            if (!unchanged(src, st)) return done(sourceChanged(src));
            done(null, buf.subarray(0, src.size));
          });
        });
      next();
    });
  });
}

/**
 * readSmall for a file of at most SYNC_READ_MAX bytes, with synchronous calls: open, read,
 * fstat, close take microseconds each from the page cache, where four thread-pool round trips
 * per file were most of the sender's CPU for thousands of small files. (From a cold, slow disk
 * a read blocks the event loop for one seek; the read-ahead still keeps the socket fed.)
 */
function readSmallSync(src: Entry): Buffer {
  const buf = Buffer.allocUnsafe(src.size + 1);
  readInto(src, buf, 0);
  return buf.subarray(0, src.size);
}

/**
 * Small files gathered for one `batch` message and its DATA record: each is read whole, with
 * synchronous calls, straight into one reused buffer (no copy per file), and checked like
 * readSmallSync: its size and whole-ms mtime after the read are the walk's, and a read asks for
 * one byte more than the size (a file that grew is seen).
 */
class Batch {
  /** The record's payload, and one spare byte for the last file's "grew" check. */
  readonly #buf = Buffer.allocUnsafe(MAX_BATCH_BYTES + 1);
  files: BatchEntry[] = [];
  bytes = 0;
  #json = 0;

  fits(e: Entry): boolean {
    return this.files.length < MAX_BATCH_FILES && this.bytes + e.size <= MAX_BATCH_BYTES && this.#json + entryJson(e) <= BATCH_JSON_MAX;
  }

  add(e: Entry): void {
    readInto(e, this.#buf, this.bytes);
    this.files.push({ path: e.path, size: e.size, mode: e.mode, mtime: e.mtimeMs });
    this.bytes += e.size;
    this.#json += entryJson(e);
  }

  /** The payload: valid until clear() (sealing copies it, so clear() may follow send()). */
  data(): Buffer {
    return this.#buf.subarray(0, this.bytes);
  }

  clear(): void {
    this.files = [];
    this.bytes = 0;
    this.#json = 0;
  }
}

/** The JSON bytes of a batch entry at most. */
function entryJson(e: Entry): number {
  return e.path.length * 6 + 100;
}

/** readSmallSync into `buf` at `at` (which has room for `src.size + 1` bytes there). */
function readInto(src: Entry, buf: Buffer, at: number): void {
  let fd: number;
  try {
    fd = fs.openSync(src.abs, 'r');
  } catch (err) {
    throw openError(src, err);
  }
  try {
    // Stops once it has `size` bytes (one read from the page cache): the fstat after it is what
    // tells a file that grew or changed meanwhile (size and mtime); a first read of size + 1
    // bytes still sees a file that was already longer.
    let got = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, at + got, src.size + 1 - got, got);
      got += n;
      if (n === 0 || got >= src.size) break;
    }
    if (got !== src.size) throw sourceChanged(src);
    if (!unchanged(src, fs.fstatSync(fd, { bigint: true }))) throw sourceChanged(src);
  } catch (e) {
    throw readError(src, e);
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // read-only: nothing to lose
    }
  }
}

/**
 * Reads the chosen (small) entries whole ahead of their turn, in order, at most READ_AHEAD_FILES
 * and READ_AHEAD_BYTES ahead, so sending many small files does not wait on one open and read
 * after another.
 */
class ReadAhead {
  readonly #entries: EntryList;
  readonly #chosen: (e: Entry) => boolean;
  readonly #reads = new Map<number, { read: Promise<Buffer>; size: number }>();
  /** The next entry to consider reading. */
  #next = 0;
  #bytes = 0;
  #stopped = false;

  constructor(entries: EntryList, chosen: (e: Entry) => boolean) {
    this.#entries = entries;
    this.#chosen = chosen;
  }

  /** The read of entry `i` if it is a chosen one (started now if not yet), else null. */
  take(i: number): Promise<Buffer> | null {
    if (this.#next <= i) this.#next = i;
    this.#fill();
    const r = this.#reads.get(i);
    if (r === undefined) return null;
    this.#reads.delete(i);
    this.#bytes -= r.size;
    this.#fill();
    return r.read;
  }

  #fill(): void {
    while (!this.#stopped && this.#next < this.#entries.length && this.#reads.size < READ_AHEAD_FILES) {
      const e = this.#entries.get(this.#next);
      if (this.#chosen(e)) {
        if (this.#reads.size > 0 && this.#bytes + e.size > READ_AHEAD_BYTES) return;
        const read = readSmall(e);
        read.catch(() => undefined); // awaited when its turn comes
        this.#reads.set(this.#next, { read, size: e.size });
        this.#bytes += e.size;
      }
      this.#next++;
    }
  }

  /** No more reads; wait for those in flight (their handles close). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#reads.values()].map((r) => r.read.catch(() => undefined)));
    this.#reads.clear();
  }
}

/**
 * Send one file: decide where its data starts (0, or where the recipient's `have` entry says,
 * once the prefix of our file is proven, by reading it once, to have the digest the recipient
 * holds), then the file message and its DATA records, one per 1 MiB read. Detects a file
 * changing under us (size and whole-ms mtime before and after).
 */
async function sendFile(
  src: Entry,
  held: HaveEntry | undefined,
  buffers: ReadBuffers,
  channel: SecureChannel,
  emit: EventSink,
  onBytes: (n: number, sent: boolean) => void,
): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(src.abs, 'r');
  } catch (e) {
    throw openError(src, e);
  }
  try {
    if (!unchanged(src, await fh.stat({ bigint: true }))) throw sourceChanged(src);
    // Where the data starts: what the recipient holds is proven against our own bytes.
    let offset = 0;
    // a whole file is usable only as it is (same size); a partial one, as a prefix
    if (held !== undefined && (held.whole ? held.offset === src.size : held.offset <= src.size)) {
      emit({ type: 'stage', stage: 'checking' });
      if ((await digestPrefix(fh, held.offset)) === held.digest) offset = held.offset;
    }
    emit({ type: 'file-start', path: src.path, size: src.size, offset });
    await channel.sendMessage({ type: 'file', path: src.path, size: src.size, offset, mode: src.mode, mtime: src.mtimeMs });
    onBytes(offset, false);
    // Two buffers: one is sealed while the next read fills the other. Sealing copies the
    // plaintext into ciphertext synchronously, so a buffer is free again as soon as
    // channel.send() has been called on it.
    const bufs = buffers.get();
    const readAt = (b: Buffer, pos: number) => {
      const p = fh.read(b, 0, Math.min(READ_CHUNK, src.size - pos), pos);
      p.catch(() => undefined); // a read ahead may fail while we wait on the socket: it is awaited below
      return p;
    };
    let at = offset;
    let which = 0;
    let next = at < src.size ? readAt(bufs[0]!, at) : null;
    try {
      while (next !== null) {
        const { bytesRead } = await next;
        if (bytesRead === 0) throw sourceChanged(src); // the file shrank
        const cur = bufs[which]!;
        at += bytesRead;
        which ^= 1;
        next = at < src.size ? readAt(bufs[which]!, at) : null;
        await channel.send(RecordType.DATA, cur.subarray(0, bytesRead));
        onBytes(bytesRead, true);
      }
    } finally {
      await next?.catch(() => undefined); // never leave a read in flight on a handle we close
    }
    if (!unchanged(src, await fh.stat({ bigint: true }))) throw sourceChanged(src);
  } catch (e) {
    throw readError(src, e);
  } finally {
    await fh.close();
  }
}
