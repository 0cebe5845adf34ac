/**
 * A real redis-server for the tests: on a free loopback port, no persistence, stopped after.
 * When the binary is missing (and .ci/run could not install it), redisSkip() says why and the
 * Redis variants of the tests are skipped with that message.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';

const BIN = process.env.TSC_CROC_TEST_REDIS_SERVER ?? 'redis-server';
const WAIT_MS = 10_000;

let available: boolean | undefined;

/** undefined if redis-server can run here, else the reason the Redis tests are skipped. */
export function redisSkip(): string | undefined {
  available ??= spawnSync(BIN, ['--version'], { stdio: 'ignore' }).status === 0;
  return available ? undefined : `${BIN} is not installed (apt-get install redis-server): the Redis store tests are skipped`;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = a !== null && typeof a === 'object' ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Send one inline command and read the first reply line (a bounded wait). */
export function redisCommand(port: number, command: string, ms = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer to ${command.split(' ')[0]} within ${ms} ms`));
    }, ms);
    s.once('connect', () => s.write(command + '\r\n'));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      const i = buf.indexOf('\r\n');
      if (i < 0) return;
      clearTimeout(t);
      s.destroy();
      resolve(buf.slice(0, i));
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

export class RedisServer {
  child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Start on a free port (or `port`), wait for PING. */
  static async start(port?: number): Promise<RedisServer> {
    const r = new RedisServer(port ?? (await freePort()));
    await r.restart();
    return r;
  }

  /** (Re)start the server on its port with empty data; resolves once it says it is ready and answers PING. */
  async restart(): Promise<void> {
    const child = spawn(BIN, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'notice'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    this.child = child;
    // never outlive the test process (a failed or killed test file must not leave a server behind)
    const reap = (): void => void child.kill('SIGKILL');
    process.once('exit', reap);
    this.#exited = new Promise((resolve) => child.once('exit', () => (process.off('exit', reap), resolve())));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => fail(new Error(`redis-server did not get ready within ${WAIT_MS} ms: ${out.slice(-500)}`)), WAIT_MS);
      const onData = (d: string): void => {
        out += d;
        if (/Ready to accept connections/.test(out)) done();
      };
      const onExit = (): void => fail(new Error(`redis-server exited: ${out.slice(-500)}`));
      const cleanup = (): void => {
        clearTimeout(t);
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
      };
      const done = (): void => (cleanup(), resolve());
      const fail = (e: Error): void => (cleanup(), child.kill('SIGKILL'), reject(e));
      child.stdout!.setEncoding('utf8').on('data', onData);
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.once('exit', onExit);
    });
    child.stdout!.resume();
    const pong = await redisCommand(this.port, 'PING');
    if (pong !== '+PONG') throw new Error(`redis-server answered ${pong} to PING`);
  }

  /** Kill the server (SIGKILL: a crash) and wait for it to exit. */
  async kill(): Promise<void> {
    if (this.child === undefined || this.child.exitCode !== null) return;
    this.child.kill('SIGKILL');
    await this.#exited;
  }

  stop(): Promise<void> {
    return this.kill();
  }
}
