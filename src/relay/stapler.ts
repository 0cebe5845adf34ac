/**
 * The relay's TCP side: each peer opens a connection, sends a hello naming its channel and uuid,
 * and once both participants of a channel are connected the relay "staples" the two sockets:
 * it answers `{v:1,type:'stapled'}` to both and then copies bytes both ways, with backpressure,
 * until both sides are done. The bytes are opaque here (encrypted end to end by the peers).
 *
 * Reading: every socket reads into a buffer it is given (net's `onread`), never into a fresh
 * chunk per read. Before stapling, reads land in one buffer shared by all sockets and the bytes
 * are copied out at once (hello, early bytes). Once stapled, each direction has its own buffer
 * (64 KiB, grown to 1 MiB when a read fills it, at most MAX_BIG_BUFFERS of those relay-wide): the
 * filled slice is written to the partner and, unless the kernel took it at once, reading pauses
 * until that write completes, so the buffer is free again when the next read lands in it. No
 * listener or allocation per chunk; one read and usually one write per buffer-full.
 *
 * Per socket: hello (≤ helloTimeoutMs, ≤ MAX_HELLO_BYTES; only once the channel's key confirmation
 * h_k is written) → admitted (waiting for the partner; at most EARLY_BYTES_LIMIT early bytes, an end
 * here gives the seat back) → stapled (copied; closed when idle for stapledIdleMs) → closed. Any
 * refusal is an error control frame followed by the end of the socket. At most maxPendingSockets
 * sockets (maxPendingSocketsPerAddress from one address) may be waiting for their hello at once.
 * An admitted socket leaves that count and takes its channel's seat: seats follow admission (two per
 * channel, one per role, only for the addresses that joined it), so a pair that completed its key
 * agreement always gets both its seats, and what one address can hold is bounded by its channel
 * quota (maxChannelsPerAddress), never by other addresses' junk. Nothing a client sends may throw out of this module.
 */
import net from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import {
  RELAY_PROTOCOL_VERSION,
  encodeControlFrame,
  isTcpHello,
  parseControlFrame,
  type ChannelState,
  type CloseReason,
  type Role,
  type TcpHello,
  type TcpReply,
} from '../core/relay-api.js';
import { isRelayError, normalizeAddress, type ChannelStore } from './channels.js';
import type { RelayMetrics } from './metrics.js';
import type { PasswordCheck } from './password.js';

/**
 * Bytes a peer may send after its hello, before `stapled`. Peers wait for `stapled` before they
 * send their stream, so this is only slack; beyond it the socket is refused (ERR_OUT_OF_ORDER).
 */
export const EARLY_BYTES_LIMIT = 4 * 1024;

/** Shared by all sockets not stapled yet; bytes read into it are copied out at once. */
const SHARED_READ_BYTES = 16 * 1024;
/** A stapled direction's first buffer. */
const SMALL_READ_BYTES = 64 * 1024;
/** What a stapled direction's buffer grows to when a read fills it (a bulk transfer). */
const BIG_READ_BYTES = 1024 * 1024;
/** Most big buffers at once, relay-wide (bounds the relay's memory; other directions stay small). */
export const MAX_BIG_BUFFERS = 64;

/** What a socket does with bytes read into its buffer; false pauses reading. */
export type OnBytes = (n: number, buf: Buffer) => boolean;
const DISCARD: OnBytes = () => true;

/** A socket's read state: where its next read lands and who takes the bytes. */
export interface Link {
  buf: Buffer;
  big: boolean;
  onBytes: OnBytes;
}

/**
 * Move an accepted connection into a socket that reads into `link`'s buffer. Node 20's net.Server
 * cannot give accepted sockets an `onread` buffer (only `new net.Socket` and `net.connect` take the
 * option), and reading into a reused buffer cuts the relay's CPU per byte relayed to under a third
 * (1.4 -> 0.4 s per GiB on loopback, level with socat). So the server accepts
 * with `pauseOnConnect` (nothing is read yet) and the connection's handle moves into a net.Socket
 * built with `onread`, as net.Server builds its own sockets (`new Socket({ handle })`); the empty
 * shell is destroyed, which also keeps the server's connection count right. This is the only place
 * that touches a private field (`_handle`); null if the handle is not what Node 20-24 give.
 */
function adopt(accepted: net.Socket, link: Link): net.Socket | null {
  const shell = accepted as unknown as { _handle: { useUserBuffer?: unknown } | null };
  const handle = shell._handle;
  if (handle === null || typeof handle !== 'object' || typeof handle.useUserBuffer !== 'function') {
    accepted.destroy();
    return null;
  }
  shell._handle = null;
  accepted.destroy();
  const onread: net.OnReadOpts = { buffer: () => link.buf, callback: (n, buf) => link.onBytes(n, buf as Buffer) };
  return new net.Socket({ handle, allowHalfOpen: true, onread } as net.SocketConstructorOpts);
}

type ErrorCode = Extract<TcpReply, { type: 'error' }>['code'];

interface Peer {
  readonly socket: net.Socket;
  readonly link: Link;
  readonly role: Role;
  readonly address: string;
  /** Bytes received after the hello, before stapling. */
  early: Buffer[];
  earlyBytes: number;
  /** Stop buffering early bytes (called when stapling). */
  detach: () => void;
  closed: boolean;
  cleanClose: boolean;
}

interface Pair {
  readonly channel: string;
  sender: Peer | null;
  recipient: Peer | null;
  stapled: boolean;
  bytes: number;
  /** When a byte last moved either way (the clock of StaplerOptions.now). */
  lastActive: number;
}

export interface StaplerOptions {
  helloTimeoutMs: number;
  stapledIdleMs: number;
  maxPendingSockets: number;
  maxPendingSocketsPerAddress: number;
  checkPassword: PasswordCheck;
  now: () => number;
  log: FastifyBaseLogger;
  metrics: RelayMetrics;
}

export class Stapler {
  readonly server: net.Server;
  readonly #store: ChannelStore;
  readonly #opts: StaplerOptions;
  readonly #helloTimeoutMs: number;
  readonly #log: FastifyBaseLogger;
  readonly #pairs = new Map<string, Pair>();
  readonly #sockets = new Set<net.Socket>();
  /** Sockets that have not sent their hello yet. */
  readonly #pending = new Map<net.Socket, string>();
  /** Pending sockets per address. */
  readonly #pendingPerAddress = new Map<string, number>();
  readonly #idleWaiters = new Set<() => void>();
  /** Store calls in flight (closes after a pair is done): close() waits for them. */
  readonly #storeOps = new Set<Promise<void>>();
  readonly #unsubscribe: () => void;
  #bytesRelayed = 0;
  #draining = false;
  readonly #shared = Buffer.allocUnsafeSlow(SHARED_READ_BYTES);
  #bigBuffers = 0;
  #paused = 0;

  constructor(store: ChannelStore, options: StaplerOptions) {
    this.#store = store;
    this.#opts = options;
    this.#helloTimeoutMs = options.helloTimeoutMs;
    this.#log = options.log;
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
      const link: Link = { buf: this.#shared, big: false, onBytes: DISCARD };
      const socket = adopt(accepted, link);
      if (socket === null) this.#log.error('tcp connection dropped: this Node version does not hand over accepted sockets');
      else this.#onConnection(socket, link);
    });
    this.server.on('error', (err) => this.#log.error({ err }, 'tcp server error'));
    // A channel closed over HTTP, expired or removed takes its sockets with it.
    this.#unsubscribe = store.onClose((channel) => this.#dropChannel(channel));
  }

  /** Bytes copied between stapled peers so far (both directions, all channels). */
  get bytesRelayed(): number {
    return this.#bytesRelayed;
  }

  /** Read buffers of BIG_READ_BYTES held by stapled directions now. */
  get bigBufferCount(): number {
    return this.#bigBuffers;
  }

  /** Stapled directions not reading now: their partner has not taken the last buffer yet (backpressure). */
  get pausedCount(): number {
    return this.#paused;
  }

  /** Open TCP connections (in any phase). */
  get connectionCount(): number {
    return this.#sockets.size;
  }

  /** Peers admitted and waiting for their partner. */
  get waitingCount(): number {
    let n = 0;
    for (const pair of this.#pairs.values()) if (!pair.stapled) n += Number(pair.sender !== null) + Number(pair.recipient !== null);
    return n;
  }

  /** Sockets that have not sent their hello yet (admitted ones hold a seat and count in waitingCount). */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Pairs stapled and still relaying. */
  get stapledCount(): number {
    let n = 0;
    for (const pair of this.#pairs.values()) if (pair.stapled) n++;
    return n;
  }

  /** The listening port, or undefined before listen(). */
  get port(): number | undefined {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a.port : undefined;
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ port, host }, () => {
        this.server.off('error', onError);
        resolve(this.port ?? port);
      });
    });
  }

  /**
   * Close stapled pairs that moved no byte for stapledIdleMs (their channel closes with reason
   * 'expired', which destroys both sockets). Called by the relay's sweep. Returns the channels closed.
   */
  async sweepIdle(now: number): Promise<string[]> {
    const closed: string[] = [];
    for (const pair of [...this.#pairs.values()]) {
      if (!pair.stapled || now - pair.lastActive < this.#opts.stapledIdleMs) continue;
      this.#log.info({ channel: pair.channel, bytes: pair.bytes, reason: 'idle' }, 'stapled pair closed');
      this.#opts.metrics.timedOut('stapled_idle');
      closed.push(pair.channel);
      await this.#closeChannel(pair.channel, 'expired');
      this.#dropChannel(pair.channel);
    }
    return closed;
  }

  /** Close the channel in the store (if open), tracked so that close() waits for it; a store failure is logged, not thrown. */
  #closeChannel(channel: string, reason: CloseReason): Promise<void> {
    const op = (async () => {
      try {
        const state = await this.#store.get(channel);
        if (state !== undefined && !state.closed) await this.#store.close(channel, reason);
      } catch (e) {
        this.#log.debug({ channel, code: isRelayError(e) ? e.code : 'ERR_INTERNAL' }, 'closing the channel in the store failed');
      }
    })();
    this.#storeOps.add(op);
    void op.finally(() => this.#storeOps.delete(op));
    return op;
  }

  /**
   * Start a graceful shutdown: stop accepting connections and drop every socket that is not
   * stapled; stapled pairs keep relaying. whenIdle() tells when the last one is done.
   */
  stopAccepting(): void {
    this.#draining = true;
    if (this.server.listening) this.server.close();
    for (const socket of [...this.#pending.keys()]) socket.destroy();
    for (const pair of [...this.#pairs.values()]) {
      if (pair.stapled) continue;
      pair.sender?.socket.destroy();
      pair.recipient?.socket.destroy();
    }
  }

  /** Resolve when no stapled pair is left. */
  whenIdle(): Promise<void> {
    if (this.stapledCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.add(resolve));
  }

  /** Stop listening and destroy every connection. */
  async close(): Promise<void> {
    this.#draining = true;
    this.#unsubscribe();
    for (const s of this.#sockets) s.destroy();
    this.#pairs.clear();
    this.#notifyIdle();
    await Promise.allSettled([...this.#storeOps]);
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Take a peer's stream that came another way than the TCP server (a WebSocket: ws-stapler.ts), built around the link it reads into. */
  attach(make: (link: Link) => net.Socket): void {
    const link: Link = { buf: this.#shared, big: false, onBytes: DISCARD };
    this.#onConnection(make(link), link);
  }

  /** The socket is no longer pending (stapled or closed). */
  #settle(socket: net.Socket): void {
    const address = this.#pending.get(socket);
    if (address === undefined) return;
    this.#pending.delete(socket);
    const n = (this.#pendingPerAddress.get(address) ?? 1) - 1;
    if (n <= 0) this.#pendingPerAddress.delete(address);
    else this.#pendingPerAddress.set(address, n);
  }

  #notifyIdle(): void {
    if (this.stapledCount > 0) return;
    for (const fn of [...this.#idleWaiters]) fn();
    this.#idleWaiters.clear();
  }

  #onConnection(socket: net.Socket, link: Link): void {
    this.#sockets.add(socket);
    socket.on('error', (err: NodeJS.ErrnoException) => this.#log.debug({ code: err.code }, 'tcp socket error'));
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.#settle(socket);
      link.onBytes = DISCARD;
      if (link.big) this.#bigBuffers--;
      link.big = false;
    });
    socket.setNoDelay(true);
    const address = normalizeAddress(socket.remoteAddress ?? '');
    if (this.#draining) return this.#refuse(socket, link, address, 'ERR_SHUTTING_DOWN', 'the relay is shutting down');
    if (this.#pending.size >= this.#opts.maxPendingSockets)
      return this.#refuse(socket, link, address, 'ERR_TOO_MANY_CONNECTIONS', 'the relay has too many connections waiting, try again later');
    const mine = this.#pendingPerAddress.get(address) ?? 0;
    if (mine >= this.#opts.maxPendingSocketsPerAddress)
      return this.#refuse(socket, link, address, 'ERR_TOO_MANY_CONNECTIONS', 'too many connections waiting from this address, try again later');
    this.#pending.set(socket, address);
    this.#pendingPerAddress.set(address, mine + 1);

    let buf: Buffer = Buffer.alloc(0);
    const done = (): void => {
      clearTimeout(timer);
      link.onBytes = DISCARD;
      socket.off('end', onEnd);
      socket.off('close', done);
    };
    const timer = setTimeout(() => {
      done();
      this.#refuse(socket, link, address, 'ERR_HELLO', `no hello within ${this.#helloTimeoutMs} ms`);
    }, this.#helloTimeoutMs);
    // The read buffer is reused: the bytes are copied (concat) before the next read.
    link.onBytes = (n, chunk) => {
      buf = Buffer.concat([buf, chunk.subarray(0, n)]);
      const parsed = parseControlFrame(buf);
      if (parsed.kind === 'need-more') return true;
      done();
      if (parsed.kind === 'invalid') this.#refuse(socket, link, address, 'ERR_HELLO', parsed.reason);
      else if (!isTcpHello(parsed.body))
        this.#refuse(socket, link, address, 'ERR_HELLO', `not a version ${RELAY_PROTOCOL_VERSION} hello`);
      else
        this.#admit(socket, link, address, parsed.body, parsed.rest).catch((e: unknown) => {
          this.#log.error({ err: e }, 'tcp admission failed');
          socket.destroy();
        });
      return true;
    };
    const onEnd = (): void => {
      done();
      this.#refuse(socket, link, address, 'ERR_HELLO', 'connection ended before the hello');
    };
    socket.once('end', onEnd);
    socket.once('close', done);
  }

  /** Check the hello against the store; seat the socket or refuse it. */
  async #admit(socket: net.Socket, link: Link, address: string, hello: TcpHello, rest: Buffer): Promise<void> {
    if (!this.#opts.checkPassword(hello.password))
      return this.#refuse(socket, link, address, 'ERR_UNAUTHORIZED', 'the relay password is missing or wrong');
    // bytes that arrive while the store answers are kept as early bytes (bounded below)
    const held: Buffer[] = rest.length > 0 ? [rest] : [];
    link.onBytes = (n, chunk) => {
      held.push(Buffer.from(chunk.subarray(0, n)));
      return held.reduce((a, b) => a + b.length, 0) <= EARLY_BYTES_LIMIT; // over: stop reading, refused below
    };
    let role: Role;
    let state: ChannelState;
    try {
      // the hello's own channel (a closed one's name may already belong to a newer channel)
      state = await this.#store.read({ channel: hello.channel, uuid: hello.uuid }, address);
      if (state.closed) return this.#refuse(socket, link, address, 'ERR_CHANNEL_CLOSED', `channel ${hello.channel} is closed`);
      role = (await this.#store.authenticate(hello.channel, hello.uuid, address)).role;
    } catch (e) {
      if (isRelayError(e)) return this.#refuse(socket, link, address, e.code, e.message);
      this.#log.error({ err: e }, 'tcp admission failed');
      return this.#refuse(socket, link, address, 'ERR_INTERNAL', 'internal relay error');
    }
    if (socket.destroyed) return;
    if (socket.readableEnded || this.#draining) return void socket.destroy();
    rest = held.length === 1 ? held[0]! : Buffer.concat(held);
    // A peer connects only after the key confirmation: before it, nobody has proven the code.
    if (state.h_k === null)
      return this.#refuse(socket, link, address, 'ERR_OUT_OF_ORDER', `the key confirmation of channel ${hello.channel} is not finished`);
    let pair = this.#pairs.get(hello.channel);
    if (pair === undefined) {
      pair = { channel: hello.channel, sender: null, recipient: null, stapled: false, bytes: 0, lastActive: this.#opts.now() };
      this.#pairs.set(hello.channel, pair);
    }
    if (pair[role] !== null)
      return this.#refuse(socket, link, address, 'ERR_CHANNEL_FULL', `the ${role} of channel ${hello.channel} is already connected`);

    const peer: Peer = {
      socket,
      link,
      role,
      address,
      early: rest.length > 0 ? [rest] : [],
      earlyBytes: rest.length,
      detach: () => {},
      closed: false,
      cleanClose: false,
    };
    // `rest` is a copy already; later early bytes are copied out of the shared read buffer.
    const onEarlyData: OnBytes = (n, chunk) => {
      peer.early.push(Buffer.from(chunk.subarray(0, n)));
      peer.earlyBytes += n;
      if (peer.earlyBytes > EARLY_BYTES_LIMIT) tooEarly();
      return true;
    };
    const tooEarly = (): void => {
      peer.detach();
      peer.early = [];
      if (owner[role] === peer) owner[role] = null;
      this.#refuse(socket, link, address, 'ERR_OUT_OF_ORDER', 'data sent before stapled');
    };
    // Peers wait for 'stapled' before they send their stream, so an end before it means the peer
    // left: free the seat (it may come back with the same uuid).
    const onEarlyEnd = (): void => {
      socket.destroy();
    };
    peer.detach = () => {
      link.onBytes = DISCARD;
      socket.off('end', onEarlyEnd);
    };
    link.onBytes = onEarlyData;
    socket.once('end', onEarlyEnd);
    const owner = pair;
    socket.once('close', (hadError: boolean) => this.#onPeerClose(owner, peer, hadError));
    pair[role] = peer;
    // The socket now holds its channel's seat, no longer a pending one.
    this.#settle(socket);
    this.#log.info({ channel: hello.channel, role, address }, 'tcp peer admitted');
    this.#opts.metrics.admitted();
    if (peer.earlyBytes > EARLY_BYTES_LIMIT) return tooEarly();

    if (pair.sender !== null && pair.recipient !== null) await this.#staple(pair, pair.sender, pair.recipient);
  }

  async #staple(pair: Pair, a: Peer, b: Peer): Promise<void> {
    try {
      await this.#store.markStapled(pair.channel);
    } catch (e) {
      // The channel closed between the hellos (or the store is unreachable): nothing to staple.
      // Both peers are told why (the store's outage reads "try again in a moment"), then cut.
      const code: ErrorCode = isRelayError(e) ? e.code : 'ERR_INTERNAL';
      this.#log.info({ channel: pair.channel, code }, 'staple refused');
      const frame = encodeControlFrame({ v: RELAY_PROTOCOL_VERSION, type: 'error', code, message: isRelayError(e) ? e.message.slice(0, 200) : 'internal relay error' });
      if (this.#pairs.get(pair.channel) === pair) this.#pairs.delete(pair.channel);
      for (const p of [a, b]) this.#endWith(p.socket, frame);
      this.#notifyIdle();
      return;
    }
    if (a.closed || b.closed || this.#pairs.get(pair.channel) !== pair || pair.sender !== a || pair.recipient !== b) {
      // a peer left while the store answered: the other one goes too (it reconnects)
      a.socket.destroy();
      b.socket.destroy();
      if (this.#pairs.get(pair.channel) === pair) this.#pairs.delete(pair.channel);
      void this.#closeChannel(pair.channel, 'error');
      return;
    }
    pair.stapled = true;
    pair.lastActive = this.#opts.now();
    this.#settle(a.socket);
    this.#settle(b.socket);
    this.#opts.metrics.stapled();
    const frame = encodeControlFrame({ v: RELAY_PROTOCOL_VERSION, type: 'stapled' });
    a.socket.write(frame);
    b.socket.write(frame);
    this.#forward(pair, a, b);
    this.#forward(pair, b, a);
    this.#log.info({ channel: pair.channel, senderAddress: pair.sender?.address, recipientAddress: pair.recipient?.address }, 'stapled');
  }

  /**
   * Copy from → to: the early bytes, then every read (see the module comment: one buffer per
   * direction, reading paused while a write of it is in flight); from's end ends to's write side.
   */
  #forward(pair: Pair, from: Peer, to: Peer): void {
    // Synchronous hand-over from the early-data handler to the copy: no read can fall in between.
    from.detach();
    for (const chunk of from.early) to.socket.write(chunk);
    this.#count(pair, from.earlyBytes);
    from.early = [];
    from.earlyBytes = 0;
    const link = from.link;
    const out = to.socket;
    let paused = false;
    // Called when a write is done. Writes complete in order, so nothing left to write means the
    // buffer the paused direction reads into is free again.
    const unpause = (): void => {
      if (!paused) return;
      paused = false;
      this.#paused--;
    };
    const written = (err?: Error | null): void => {
      if (!paused || err != null || out.writableLength > 0) return;
      unpause();
      if (!from.socket.destroyed) from.socket.resume();
    };
    from.socket.once('close', unpause);
    link.onBytes = (n, buf) => {
      this.#count(pair, n);
      const shared = buf === this.#shared;
      // The first read after stapling may still land in the shared buffer: copy it out, and read
      // into this direction's own buffer from now on.
      const data = shared ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n);
      if (n === buf.length && !link.big && this.#bigBuffers < MAX_BIG_BUFFERS) {
        // A full read: a bulk transfer. The next reads land in a big buffer; the old one stays
        // with its write until that is done.
        this.#bigBuffers++;
        link.big = true;
        link.buf = Buffer.allocUnsafeSlow(BIG_READ_BYTES);
      } else if (shared) link.buf = Buffer.allocUnsafeSlow(SMALL_READ_BYTES);
      out.write(data, written);
      if (out.writableLength === 0) return true; // the kernel took it all: the buffer is free
      paused = true;
      this.#paused++;
      return false;
    };
    from.socket.once('end', () => out.end());
  }

  #count(pair: Pair, n: number): void {
    pair.bytes += n;
    pair.lastActive = this.#opts.now();
    this.#bytesRelayed += n;
  }

  #onPeerClose(pair: Pair, peer: Peer, hadError: boolean): void {
    peer.closed = true;
    peer.cleanClose = !hadError && peer.socket.readableEnded && peer.socket.writableFinished;
    if (!pair.stapled) {
      // A peer that leaves before its partner arrives frees its seat.
      if (pair[peer.role] === peer) pair[peer.role] = null;
      if (pair.sender === null && pair.recipient === null && this.#pairs.get(pair.channel) === pair)
        this.#pairs.delete(pair.channel);
      return;
    }
    const other = peer.role === 'sender' ? pair.recipient : pair.sender;
    // A clean close means both directions of this peer ended, so the other one is finishing too;
    // anything else (an error, a reset, a destroy) takes the other side down with it.
    if (!peer.cleanClose) other?.socket.destroy();
    if (other !== null && !other.closed) return;

    // a pair no longer registered was dropped with its channel: the name may be a newer channel's now
    const registered = this.#pairs.get(pair.channel) === pair;
    if (registered) this.#pairs.delete(pair.channel);
    pair.stapled = false;
    const clean = peer.cleanClose && (other?.cleanClose ?? true);
    this.#log.info({ channel: pair.channel, bytes: pair.bytes, clean }, 'stapled pair done');
    if (registered) void this.#closeChannel(pair.channel, clean ? 'done' : 'error');
    this.#notifyIdle();
  }

  /** Destroy every socket seated in `channel`. */
  #dropChannel(channel: string): void {
    const pair = this.#pairs.get(channel);
    if (pair === undefined) return;
    this.#pairs.delete(channel);
    pair.sender?.socket.destroy();
    pair.recipient?.socket.destroy();
    this.#notifyIdle();
  }

  /** Answer an error control frame, then end the socket; discard whatever else the client sends. */
  #refuse(socket: net.Socket, link: Link, address: string, code: ErrorCode, message: string): void {
    // At debug: a refusal is something a client can cause at will (rejections_total counts them).
    this.#log.debug({ address, code }, 'tcp hello refused');
    this.#opts.metrics.rejected('tcp', code);
    link.onBytes = DISCARD;
    socket.resume();
    this.#endWith(socket, encodeControlFrame({ v: RELAY_PROTOCOL_VERSION, type: 'error', code, message: message.slice(0, 200) }));
  }

  /** Send `frame` and end the socket, then close it: as soon as the frame is written, or after helloTimeoutMs at most. */
  #endWith(socket: net.Socket, frame: Buffer): void {
    if (socket.destroyed) return;
    if (!socket.writableEnded) socket.end(frame);
    // Close as soon as the frame is written: a refused socket (over a cap ones included, which are
    // counted nowhere) must not hold a descriptor while its client keeps its side open.
    socket.once('finish', () => socket.destroy());
    // A client that never closes its side must not hold the socket forever.
    const linger = setTimeout(() => socket.destroy(), this.#helloTimeoutMs);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
  }
}
