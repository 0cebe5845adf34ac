/**
 * The relay client's HTTP for `http://` relays: POST a JSON body, read the answer, keep the
 * connection for the next request. HTTP/1.1 over node:net, written for this one use instead of
 * node:http, which a peer would load (38 modules) and run cold for its first request: ~4 ms of
 * CPU per start, twice on the path from the code line to the file (bench/README.md, "Session 5").
 * `https://` relays keep node:https (relay-client.ts).
 *
 * What the relay sends is hostile until checked: the head is at most MAX_HEAD_BYTES with at most
 * MAX_HEADERS lines, the status line and every header line must parse, Content-Length must be
 * one decimal number (repeated only with the same value) and the body at most `maxBytes`;
 * chunked answers (a proxy may send them) are decoded strictly; anything else is an error with
 * an `HPE_` code, as node:http's parser would give (net-errors.ts words those). An answer with
 * neither length nor chunking runs to the connection's end. A connection is kept only after a
 * complete HTTP/1.1 answer without `Connection: close` and with no byte after it.
 */
import { connect, type Socket } from 'node:net';
import { trace, tracing } from './trace.js';

export const MAX_HEAD_BYTES = 16 * 1024;
export const MAX_HEADERS = 100;

export interface Http1Answer {
  status: number;
  body: Buffer;
}

/** One request under way. */
export interface Http1Exchange {
  answer: Promise<Http1Answer>;
  /** The request went out on a kept-alive connection (a failure before any answer may be retried once). */
  reused: boolean;
  /** Settles once the request has been handed to the kernel (never rejects). */
  sent: Promise<void>;
  /** Called when the answer's head (its status and headers) has arrived and parsed. */
  onAnswerStarted: (() => void) | undefined;
  /** Drops the connection (a timeout, a cancel). */
  destroy(): void;
}

function protocolError(message: string, code = 'HPE_INVALID'): Error {
  return Object.assign(new Error(message), { code });
}

/** The connection ended before the answer did: what node:http calls a hang-up. */
function hangUp(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

const HTTP_PREFIX = Buffer.from('HTTP/1.', 'latin1');

type Body = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'to-end' };

/**
 * Reads one answer from a stream of bytes: `push` them in; it settles once with the answer, or
 * an error. Pure (no socket): tests feed it bytes directly.
 */
export class AnswerReader {
  #head: Buffer[] = [];
  #headBytes = 0;
  #status = 0;
  #body: Body | null = null;
  #parts: Buffer[] = [];
  #size = 0;
  /** Chunked: bytes not yet parsed (a size line, or a chunk's trailing CRLF, split across reads). */
  #pending: Buffer = Buffer.alloc(0);
  #chunkLeft = 0;
  #chunkState: 'size' | 'data' | 'data-crlf' | 'trailer' = 'size';
  #done = false;
  /** The answer lets the connection be used again. */
  keepAlive = true;
  /** Bytes that came after the answer (the connection is then not reused). */
  extra = 0;

  constructor(private readonly maxBytes: number) {}

  get done(): boolean {
    return this.#done;
  }

  get status(): number {
    return this.#status;
  }

  body(): Buffer {
    return this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#size);
  }

  /** Takes bytes; returns true once the answer is complete. Throws on a malformed answer. */
  push(data: Buffer): boolean {
    if (data.length === 0) return this.#done;
    if (this.#done) {
      this.extra += data.length;
      this.keepAlive = false;
      return true;
    }
    if (this.#body === null) {
      const end = this.#headEnd(data);
      if (end < 0) return false;
      const head = Buffer.concat(this.#head);
      this.#head = [];
      const rest = head.subarray(end + 4);
      this.#parseHead(head.subarray(0, end).toString('latin1'));
      if (this.#body === null) {
        // a 1xx answer: the real one follows
        this.#headBytes = 0;
        return rest.length > 0 ? this.push(rest) : false;
      }
      return rest.length > 0 ? this.#takeBody(rest) : this.#checkEmpty();
    }
    return this.#takeBody(data);
  }

  /** The connection ended: completes an answer that runs to the end; otherwise an error. */
  end(): void {
    if (this.#done) return;
    if (this.#body?.kind === 'to-end') {
      this.#done = true;
      this.keepAlive = false;
      return;
    }
    throw hangUp();
  }

  /** Returns the offset of CRLFCRLF in the head so far, or -1 (keeps `data`). */
  #headEnd(data: Buffer): number {
    const from = Math.max(0, this.#headBytes - 3);
    this.#head.push(data);
    this.#headBytes += data.length;
    const all = this.#head.length === 1 ? data : Buffer.concat(this.#head);
    if (this.#head.length > 1) this.#head = [all];
    // something else than HTTP (a TCP port of another protocol) is refused at its first bytes,
    // as node:http's parser does, not waited on for a head that never comes
    const lead = Math.min(all.length, HTTP_PREFIX.length);
    if (all.compare(HTTP_PREFIX, 0, lead, 0, lead) !== 0) throw protocolError('not an HTTP/1.x answer', 'HPE_INVALID_CONSTANT');
    const end = all.indexOf('\r\n\r\n', from, 'latin1');
    if (end < 0 && this.#headBytes > MAX_HEAD_BYTES) throw protocolError('the answer\'s head is too long', 'HPE_HEADER_OVERFLOW');
    if (end > MAX_HEAD_BYTES) throw protocolError('the answer\'s head is too long', 'HPE_HEADER_OVERFLOW');
    return end;
  }

  #parseHead(head: string): void {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/.exec(lines[0]!);
    if (!m) throw protocolError('not an HTTP/1.x answer', 'HPE_INVALID_CONSTANT');
    if (lines.length - 1 > MAX_HEADERS) throw protocolError('too many header lines', 'HPE_HEADER_OVERFLOW');
    const status = Number(m[2]);
    let length: number | undefined;
    let chunked = false;
    let close = m[1] === '0';
    for (const line of lines.slice(1)) {
      const h = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[\t ]*(.*?)[\t ]*$/.exec(line);
      if (!h) throw protocolError('a malformed header line', 'HPE_INVALID_HEADER_TOKEN');
      const name = h[1]!.toLowerCase();
      const value = h[2]!;
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value)) throw protocolError('a malformed Content-Length', 'HPE_INVALID_CONTENT_LENGTH');
        const n = Number(value);
        if (length !== undefined && length !== n) throw protocolError('two different Content-Lengths', 'HPE_UNEXPECTED_CONTENT_LENGTH');
        length = n;
      } else if (name === 'transfer-encoding') {
        if (value.toLowerCase() !== 'chunked' || chunked) throw protocolError('an unsupported Transfer-Encoding', 'HPE_INVALID_TRANSFER_ENCODING');
        chunked = true;
      } else if (name === 'connection') {
        if (value.toLowerCase().split(',').some((t) => t.trim() === 'close')) close = true;
      }
    }
    if (status < 200) return; // 1xx: no body, another head follows
    if (chunked && length !== undefined) throw protocolError('both Content-Length and chunked', 'HPE_UNEXPECTED_CONTENT_LENGTH');
    if (length !== undefined && length > this.maxBytes) throw Object.assign(new Error('oversized answer'), { code: 'ERR_ANSWER_TOO_LARGE' });
    this.#status = status;
    this.keepAlive = !close;
    // 204 and 304 have no body whatever the headers say
    this.#body = status === 204 || status === 304 ? { kind: 'length', left: 0 } : chunked ? { kind: 'chunked' } : length !== undefined ? { kind: 'length', left: length } : { kind: 'to-end' };
    if (this.#body.kind === 'to-end') this.keepAlive = false;
  }

  #checkEmpty(): boolean {
    if (this.#body?.kind === 'length' && this.#body.left === 0) this.#done = true;
    return this.#done;
  }

  #keep(data: Buffer): void {
    this.#size += data.length;
    if (this.#size > this.maxBytes) throw Object.assign(new Error('oversized answer'), { code: 'ERR_ANSWER_TOO_LARGE' });
    this.#parts.push(data);
  }

  #takeBody(data: Buffer): boolean {
    const body = this.#body!;
    if (body.kind === 'to-end') {
      this.#keep(data);
      return false;
    }
    if (body.kind === 'length') {
      const take = Math.min(body.left, data.length);
      if (take > 0) this.#keep(data.subarray(0, take));
      body.left -= take;
      if (body.left === 0) {
        this.#done = true;
        if (data.length > take) {
          this.extra += data.length - take;
          this.keepAlive = false;
        }
      }
      return this.#done;
    }
    return this.#takeChunked(data);
  }

  #takeChunked(input: Buffer): boolean {
    let data = this.#pending.length > 0 ? Buffer.concat([this.#pending, input]) : input;
    this.#pending = Buffer.alloc(0);
    for (;;) {
      if (this.#chunkState === 'data') {
        const take = Math.min(this.#chunkLeft, data.length);
        if (take > 0) this.#keep(data.subarray(0, take));
        this.#chunkLeft -= take;
        data = data.subarray(take);
        if (this.#chunkLeft > 0) return false;
        this.#chunkState = 'data-crlf';
      }
      if (this.#chunkState === 'data-crlf') {
        if (data.length < 2) {
          this.#pending = data;
          return false;
        }
        if (data[0] !== 0x0d || data[1] !== 0x0a) throw protocolError('a chunk without its CRLF', 'HPE_STRICT');
        data = data.subarray(2);
        this.#chunkState = 'size';
      }
      const eol = data.indexOf('\r\n', 0, 'latin1');
      if (eol < 0) {
        if (data.length > 1024) throw protocolError('a chunk size line is too long', 'HPE_INVALID_CHUNK_SIZE');
        this.#pending = data;
        return false;
      }
      const line = data.subarray(0, eol).toString('latin1');
      data = data.subarray(eol + 2);
      if (this.#chunkState === 'trailer') {
        if (line === '') {
          this.#done = true;
          if (data.length > 0) {
            this.extra += data.length;
            this.keepAlive = false;
          }
          return true;
        }
        if ((this.#headBytes += line.length) > MAX_HEAD_BYTES) throw protocolError('trailers too long', 'HPE_HEADER_OVERFLOW');
        continue; // a trailer field: ignored
      }
      const m = /^([0-9a-fA-F]{1,8})(?:[\t ]*;.*)?$/.exec(line);
      if (!m) throw protocolError('a malformed chunk size', 'HPE_INVALID_CHUNK_SIZE');
      const n = parseInt(m[1]!, 16);
      if (n === 0) {
        this.#chunkState = 'trailer';
        continue;
      }
      if (this.#size + n > this.maxBytes) throw Object.assign(new Error('oversized answer'), { code: 'ERR_ANSWER_TOO_LARGE' });
      this.#chunkLeft = n;
      this.#chunkState = 'data';
    }
  }
}

/**
 * Kept-alive connections to one `host:port`, and POSTs over them. Idle connections are unref'ed
 * (they never keep the process alive) and dropped when the server closes them or sends a byte
 * unasked.
 */
export class Http1Connections {
  #idle: { socket: Socket; drop: () => void }[] = [];

  constructor(
    private readonly host: string,
    private readonly port: number,
    /** The Host header's value (with the port unless it is 80; IPv6 in brackets). */
    private readonly hostHeader: string,
  ) {}

  post(path: string, contentType: string, payload: Buffer, maxBytes: number): Http1Exchange {
    const idle = this.#idle.pop();
    const reused = idle !== undefined;
    let s: Socket;
    if (idle !== undefined) {
      s = idle.socket;
      off(s, idle.drop);
      s.ref();
    } else s = connect({ host: this.host, port: this.port, noDelay: true });
    const reader = new AnswerReader(maxBytes);
    let settled = false;
    let started = false;
    let markSent!: () => void;
    const exchange: Http1Exchange = {
      reused,
      sent: new Promise<void>((r) => (markSent = r)),
      onAnswerStarted: undefined,
      answer: undefined as unknown as Promise<Http1Answer>,
      destroy: () => {
        settled = true;
        off(s, onData, onEnd, onError, onClose);
        s.destroy();
      },
    };
    let resolveAnswer!: (a: Http1Answer) => void;
    let rejectAnswer!: (e: unknown) => void;
    exchange.answer = new Promise<Http1Answer>((resolve, reject) => {
      resolveAnswer = resolve;
      rejectAnswer = reject;
    });
    const settle = (e: unknown, keep: boolean) => {
      if (settled) return;
      settled = true;
      off(s, onData, onEnd, onError, onClose);
      if (e !== null) {
        s.destroy();
        rejectAnswer(e);
        return;
      }
      resolveAnswer({ status: reader.status, body: reader.body() });
      if (keep) this.#release(s);
      else s.destroy();
    };
    function onData(d: Buffer): void {
      let complete: boolean;
      try {
        complete = reader.push(d);
      } catch (e) {
        return settle(e, false);
      } finally {
        if (!started && reader.status !== 0) {
          started = true;
          exchange.onAnswerStarted?.();
        }
      }
      if (complete) settle(null, reader.keepAlive);
    }
    function onEnd(): void {
      try {
        reader.end();
        settle(null, false);
      } catch (e) {
        settle(e, false);
      }
    }
    const onError = (e: Error) => settle(e, false);
    const onClose = () => settle(hangUp(), false);
    s.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
    const head = `POST ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nContent-Type: ${contentType}\r\nContent-Length: ${payload.length}\r\nConnection: keep-alive\r\n\r\n`;
    s.write(Buffer.concat([Buffer.from(head, 'latin1'), payload]), () => markSent());
    if (tracing) {
      // the marks node:http gives through diagnostics_channel (trace.ts), for the timeline
      trace(`http: POST ${path} sent${reused ? ' (kept-alive connection)' : ''}`);
      exchange.answer.then((a) => trace(`http: ${path} answered ${a.status}`), () => undefined);
    }
    return exchange;
  }

  /** Back to the pool, until the server closes it or says anything unasked. */
  #release(s: Socket): void {
    const drop = () => {
      const i = this.#idle.findIndex((x) => x.socket === s);
      if (i >= 0) this.#idle.splice(i, 1);
      off(s, drop);
      s.destroy();
    };
    s.on('data', drop).on('end', drop).on('error', drop).on('close', drop);
    s.unref();
    this.#idle.push({ socket: s, drop });
  }

  /** Closes the idle connections. */
  close(): void {
    for (const { socket } of this.#idle.splice(0)) socket.destroy();
  }
}

/** Removes our listeners (only ours: a socket has listeners of its own on 'end'). */
function off(s: Socket, ...fns: ((...a: never[]) => void)[]): void {
  for (const f of fns) for (const ev of ['data', 'end', 'error', 'close'] as const) s.off(ev, f as (...args: unknown[]) => void);
}
