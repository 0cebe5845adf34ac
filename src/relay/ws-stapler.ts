/**
 * The stapler over a WebSocket (docs/relay-api.md §WebSocket): a browser cannot open a TCP
 * connection, so it opens `GET /v1/stream` on the relay's HTTP port as a WebSocket and sends on it
 * exactly the bytes a TCP peer sends on its connection: the length-prefixed hello, then, once
 * `stapled` came back, its opaque stream. Binary messages carry the bytes (their boundaries mean
 * nothing); an empty binary message ends the sender's direction, as a TCP half-close does; a text
 * message is a protocol error. Closing the WebSocket is a reset.
 *
 * Nothing here decides anything: a WsPeerSocket looks to the stapler like an accepted TCP socket
 * (the subset of net.Socket it uses), so a WebSocket peer goes through the same hello, password,
 * admission, seats, quotas (pending sockets, per address), early-bytes limit, backpressure and idle
 * timeout as a TCP one, and is stapled to a TCP peer or to another WebSocket peer alike.
 * The upgrade request is routed through fastify like any request: trustProxy decides its client
 * address, and the HTTP connection caps already counted its connection.
 */
import { EventEmitter } from 'node:events';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { normalizeAddress } from './channels.js';
import type { Link, Stapler } from './stapler.js';

/** The path of the WebSocket stream endpoint. */
export const WS_STREAM_PATH = '/v1/stream';
/** Largest WebSocket message accepted (a record frame is at most 1 MiB + 29 bytes; ws holds one message in memory). */
export const MAX_WS_MESSAGE = 2 * 1024 * 1024;
/** How long a close handshake may take before the connection is cut. */
const CLOSE_GRACE_MS = 2_000;

/**
 * A WebSocket seen as the stapler's socket. Reading: each received message is copied into the
 * link's buffer, a buffer-full at a time, and handed to link.onBytes; when that returns false the
 * WebSocket is paused (and the rest of the message kept) until resume(). Writing: ws.send, whose
 * unsent bytes are writableLength, so the stapler's backpressure works as on TCP.
 */
export class WsPeerSocket extends EventEmitter {
  readonly remoteAddress: string;
  readonly #ws: WebSocket;
  readonly #link: Link;
  /** Bytes received but not handed over yet (reading paused): the rest of a message, and any that came after it. */
  #rest: Buffer[] = [];
  #paused = false;
  #readableEnded = false;
  #writableEnded = false;
  #writableFinished = false;
  #destroyed = false;
  #closeEmitted = false;

  constructor(ws: WebSocket, link: Link, remoteAddress: string) {
    super();
    this.#ws = ws;
    this.#link = link;
    this.remoteAddress = remoteAddress;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on('error', (err: Error) => this.emit('error', err));
    ws.on('close', () => this.#emitClose());
  }

  get readableEnded(): boolean {
    return this.#readableEnded;
  }
  get writableEnded(): boolean {
    return this.#writableEnded;
  }
  get writableFinished(): boolean {
    return this.#writableFinished;
  }
  get destroyed(): boolean {
    return this.#destroyed;
  }
  /** Bytes given to write() that the kernel has not taken yet. */
  get writableLength(): number {
    return this.#ws.bufferedAmount;
  }

  setNoDelay(): this {
    return this;
  }

  write(data: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    if (this.#destroyed || this.#writableEnded || this.#ws.readyState !== this.#ws.OPEN) {
      queueMicrotask(() => cb?.(new Error('write after end')));
      return false;
    }
    this.#ws.send(data, { binary: true }, (err) => cb?.(err ?? null));
    return this.#ws.bufferedAmount === 0;
  }

  /** End our direction: an empty binary message; once both directions ended, a clean close. */
  end(data?: Uint8Array): this {
    if (this.#writableEnded || this.#destroyed) return this;
    if (data !== undefined && data.length > 0) this.write(data);
    this.#writableEnded = true;
    if (this.#ws.readyState !== this.#ws.OPEN) return this;
    this.#ws.send(new Uint8Array(0), { binary: true }, (err) => {
      if (err) return;
      this.#writableFinished = true;
      this.emit('finish');
      if (this.#readableEnded) this.#close(1000);
    });
    return this;
  }

  resume(): this {
    if (!this.#paused) return this;
    this.#paused = false;
    while (this.#rest.length > 0 && !this.#paused && !this.#destroyed) this.#take(this.#rest.shift()!);
    if (!this.#paused && !this.#destroyed) this.#ws.resume();
    return this;
  }

  destroy(): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    const clean = this.#readableEnded && this.#writableFinished;
    if (clean) this.#close(1000);
    else this.#ws.terminate();
    // as net.Socket: 'close' follows destroy() asynchronously, whatever the WebSocket does
    setImmediate(() => this.#emitClose());
    return this;
  }

  #close(code: number): void {
    if (this.#ws.readyState === this.#ws.CLOSED || this.#ws.readyState === this.#ws.CLOSING) return;
    this.#ws.close(code);
    const timer = setTimeout(() => this.#ws.terminate(), CLOSE_GRACE_MS);
    timer.unref();
    this.#ws.once('close', () => clearTimeout(timer));
  }

  #emitClose(): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    this.#destroyed = true;
    const hadError = !(this.#readableEnded && this.#writableFinished);
    this.emit('close', hadError);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#destroyed) return;
    if (!isBinary || this.#readableEnded) {
      // a text message, or bytes after the end: not this protocol
      this.destroy();
      return;
    }
    if (this.#paused) {
      // ws may still emit a message it had parsed when reading paused: keep it, in order
      this.#rest.push(data);
      return;
    }
    this.#take(data);
  }

  /** One message's bytes, in order: the end (empty), or bytes for the link. */
  #take(data: Buffer): void {
    if (data.length === 0) {
      this.#readableEnded = true;
      this.emit('end');
      if (this.#writableFinished) this.#close(1000);
      return;
    }
    if (this.#readableEnded) {
      this.destroy();
      return;
    }
    this.#deliver(data);
  }

  /** Hand `data` to the link a buffer-full at a time; pause when it says so. */
  #deliver(data: Buffer): void {
    let off = 0;
    while (off < data.length && !this.#destroyed) {
      const buf = this.#link.buf;
      const n = Math.min(buf.length, data.length - off);
      data.copy(buf, 0, off, off + n);
      off += n;
      if (!this.#link.onBytes(n, buf)) {
        this.#paused = true;
        if (off < data.length) this.#rest.unshift(data.subarray(off));
        this.#ws.pause();
        return;
      }
    }
  }
}

/**
 * Serve `GET /v1/stream` as a WebSocket whose stream the stapler takes. Upgrade requests are
 * routed through fastify (hooks, trustProxy, 404 elsewhere); a plain GET there answers 426.
 */
export function registerWebSocketStapler(app: FastifyInstance, stapler: Stapler): void {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_WS_MESSAGE, clientTracking: false });
  const upgrades = new WeakMap<IncomingMessage, { socket: Duplex; head: Buffer }>();
  /**
   * Upgraded connections: the HTTP server's close() waits for them, and its forceCloseConnections
   * does not see them, so a close (after its drain, when given one) cuts what is left here.
   */
  const live = new Set<Duplex>();
  app.addHook('preClose', async () => {
    for (const socket of live) socket.destroy();
  });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    live.add(socket);
    socket.once('close', () => live.delete(socket));
    upgrades.set(req, { socket, head });
    socket.on('error', () => socket.destroy());
    const res = new ServerResponse(req);
    try {
      res.assignSocket(socket as net.Socket);
      app.routing(req, res);
    } catch {
      socket.destroy();
    }
  });
  app.get(WS_STREAM_PATH, (request, reply) => {
    const up = upgrades.get(request.raw);
    if (up === undefined || request.headers.upgrade?.toLowerCase() !== 'websocket') {
      return reply.code(426).header('upgrade', 'websocket').send({ code: 'ERR_BAD_REQUEST', message: 'this endpoint takes a WebSocket' });
    }
    upgrades.delete(request.raw);
    reply.hijack();
    const address = normalizeAddress(request.ip);
    wss.handleUpgrade(request.raw, up.socket, up.head, (ws) => {
      stapler.attach((link) => new WsPeerSocket(ws, link, address) as unknown as net.Socket);
    });
  });
}
