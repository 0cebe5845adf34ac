/**
 * The raw TCP baseline: the same three roles as tsc-croc with no code, no PAKE, no crypto and no
 * framing, so what is left is the cost of moving the bytes through a relay on this machine.
 *
 *   relay   --host H --port P           pairs the first two connections and pipes them both ways
 *                                       (backpressure by pipe()); prints `raw relay: TCP on H:PORT`
 *                                       to stderr; closes on SIGTERM/SIGINT.
 *   send    --host H --port P FILE      streams FILE into the socket, then ends its side.
 *   receive --host H --port P OUTFILE   pipes the socket into OUTFILE; prints `first-byte`,
 *                                       `data-end <bytes>` (all bytes handed to the kernel) and
 *                                       `synced` (after fdatasync, as the tsc-croc recipient does
 *                                       before it commits a file) on stdout.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';

export interface RawIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

interface Endpoint {
  host: string;
  port: number;
  positional: string[];
}

function parseEndpoint(args: string[]): Endpoint {
  let host = '127.0.0.1';
  let port: number | undefined;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--host' || a === '--port') {
      const v = args[++i];
      if (v === undefined) throw new TypeError(`${a} needs a value`);
      if (a === '--host') host = v;
      else {
        port = Number(v);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`--port must be a port number, got ${v}`);
      }
    } else positional.push(a);
  }
  if (port === undefined) throw new TypeError('--port is required');
  return { host, port, positional };
}

/** Run one raw role; resolves to the exit code. */
export async function runRawPeer(argv: string[], io: RawIo): Promise<number> {
  const [role, ...rest] = argv;
  try {
    const ep = parseEndpoint(rest);
    switch (role) {
      case 'relay':
        await rawRelay(ep, io);
        return 0;
      case 'send':
        await rawSend(ep, io);
        return 0;
      case 'receive':
        await rawReceive(ep, io);
        return 0;
      default:
        io.stderr.write(`raw: unknown role ${String(role)} (relay, send or receive)\n`);
        return 2;
    }
  } catch (e) {
    io.stderr.write(`raw ${String(role)}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

async function rawRelay(ep: Endpoint, io: RawIo): Promise<void> {
  const sockets = new Set<net.Socket>();
  let waiting: net.Socket | null = null;
  let paired = false;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    if (paired) {
      socket.destroy();
      return;
    }
    if (waiting === null) {
      waiting = socket; // not read until paired: its bytes wait in the kernel (backpressure)
      return;
    }
    paired = true;
    const a = waiting;
    const b = socket;
    waiting = null;
    // an error on one side takes the other down, as the tsc-croc stapler does
    a.once('close', (hadError) => hadError && b.destroy());
    b.once('close', (hadError) => hadError && a.destroy());
    a.pipe(b);
    b.pipe(a);
  });
  server.listen(ep.port, ep.host);
  await once(server, 'listening');
  const addr = server.address();
  const port = addr !== null && typeof addr === 'object' ? addr.port : ep.port;
  io.stderr.write(`raw relay: TCP on ${ep.host}:${port}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

function connect(ep: Endpoint): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: ep.host, port: ep.port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Resolves when the socket has closed; rejects on a socket error. */
function closed(socket: net.Socket): Promise<void> {
  const p = new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
  p.catch(() => undefined); // awaited later; an early error must not count as unhandled
  return p;
}

async function rawSend(ep: Endpoint, io: RawIo): Promise<void> {
  const [file] = ep.positional;
  if (file === undefined) throw new TypeError('give the file to send');
  const socket = await connect(ep);
  const done = closed(socket);
  const input = createReadStream(file);
  let bytes = 0;
  input.on('data', (b) => (bytes += b.length));
  input.once('error', (e) => socket.destroy(e));
  input.pipe(socket); // ends the socket's write side at EOF
  socket.resume(); // nothing comes back but the relay's end; read it so the socket can close
  await done;
  io.stdout.write(`sent ${bytes}\n`);
}

async function rawReceive(ep: Endpoint, io: RawIo): Promise<void> {
  const [outFile] = ep.positional;
  if (outFile === undefined) throw new TypeError('give the file to write');
  const socket = await connect(ep);
  const done = closed(socket);
  const output = createWriteStream(outFile, { flags: 'wx' });
  let bytes = 0;
  socket.once('data', () => io.stdout.write('first-byte\n'));
  socket.on('data', (b: Buffer) => (bytes += b.length));
  output.once('error', (e) => socket.destroy(e));
  socket.pipe(output);
  await once(output, 'finish');
  io.stdout.write(`data-end ${bytes}\n`);
  await once(output, 'close');
  const fh = await open(outFile, 'r+');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
  io.stdout.write('synced\n');
  socket.end();
  await done;
}
