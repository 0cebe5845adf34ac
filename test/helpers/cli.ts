/** Spawning the built CLI (the bundle users run, dist/tsc-croc.cjs) in tests: bounded waits on output and exit, never sleeps. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../tsc-croc.cjs', import.meta.url));
/** An empty config folder, so that no real remembered relay of the machine's user leaks in. */
const CONFIG_HOME = mkdtempSync(join(tmpdir(), 'tsc-croc-config-'));

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** stdout then stderr (for assertion messages and checks that either holds). */
  output: () => string;
  /** Resolves with the exit code; rejects (and kills) after `ms`. */
  exit: (ms?: number) => Promise<number>;
  /** Resolves with the first match of `re` on stdout or stderr; rejects after `ms`. */
  waitFor: (re: RegExp, ms?: number) => Promise<RegExpMatchArray>;
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string | Buffer; wrap?: string[] } = {}): Proc {
  const env = { ...process.env, ...opts.env };
  for (const k of Object.keys(env)) if (k.startsWith('TSC_CROC_')) delete env[k];
  // colour only where a test asks for it (a CI's FORCE_COLOR would colour every piped line)
  delete env.NO_COLOR;
  delete env.FORCE_COLOR;
  env.XDG_CONFIG_HOME = CONFIG_HOME;
  // the local network through loopback only: no test multicasts on the machine's real interfaces
  env.TSC_CROC_INTERFACES = 'lo';
  Object.assign(env, opts.env);
  // wrap: a command prefix, e.g. ['ip', 'netns', 'exec', 'ns1'] to run the CLI in a network namespace
  const [cmd, ...pre] = [...(opts.wrap ?? []), process.execPath, CLI, ...args];
  return spawnWatched(cmd!, pre, { env, cwd: opts.cwd, input: opts.input, label: `tsc-croc ${args.join(' ')}` });
}

/**
 * Spawn `cmd` with exactly `opts.env` and watch its output: the Proc of runCli, for any command
 * that prints like the CLI (the installed bin, the single binary).
 */
export function spawnWatched(cmd: string, argv: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; input?: string | Buffer; label?: string }): Proc {
  const label = opts.label ?? [cmd, ...argv].join(' ');
  const child = spawn(cmd, argv, { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  const poke = () => listeners.forEach((l) => l());
  child.stdout!.setEncoding('utf8').on('data', (d: string) => ((out += d), poke()));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => ((err += d), poke()));
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else child.stdin!.end();
  const exited = new Promise<number>((resolve) => child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : -1))));
  exited.then(poke, poke);
  const describe = () => `\n--- stdout:\n${out}\n--- stderr:\n${err}`;
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    output: () => out + err,
    exit: (ms = 30_000) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`process did not exit within ${ms} ms: ${label}${describe()}`));
        }, ms);
        void exited.then((c) => {
          clearTimeout(t);
          resolve(c);
        });
      }),
    waitFor: (re, ms = 15_000) =>
      new Promise((resolve, reject) => {
        let done = false;
        const check = () => {
          if (done) return;
          const m = out.match(re) ?? err.match(re);
          if (m) {
            done = true;
            listeners.delete(check);
            clearTimeout(t);
            resolve(m);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done = true;
            listeners.delete(check);
            clearTimeout(t);
            reject(new Error(`process exited before printing ${re}${describe()}`));
          }
        };
        const t = setTimeout(() => {
          done = true;
          listeners.delete(check);
          reject(new Error(`no ${re} within ${ms} ms${describe()}`));
        }, ms);
        listeners.add(check);
        check();
      }),
  };
}

/**
 * Start `tsc-croc relay` on loopback, on free ports or on `ports` (to restart one where it was);
 * returns its URL, ports and a stop function.
 */
export async function startCliRelay(
  env: NodeJS.ProcessEnv = {},
  ports: { http: number; tcp: number } = { http: 0, tcp: 0 },
): Promise<{ url: string; httpPort: number; tcpPort: number; proc: Proc; stop: () => Promise<number> }> {
  // the tests run many transfers from one address: lift the per-address limits (tested on their own)
  const limits = { TSC_CROC_RELAY_JOIN_RATE: '100000', TSC_CROC_RELAY_CHANNEL_RATE: '1000000', TSC_CROC_RELAY_MAX_CHANNELS_PER_ADDRESS: '10000', TSC_CROC_RELAY_MAX_HTTP_CONNECTIONS_PER_ADDRESS: '10000', TSC_CROC_RELAY_MAX_LONG_POLLS_PER_ADDRESS: '4000', TSC_CROC_RELAY_MAX_PENDING_SOCKETS_PER_ADDRESS: '4000' };
  const proc = runCli(['relay', '--host', '127.0.0.1', '--port', String(ports.http), '--tcp-port', String(ports.tcp), '--quiet'], { env: { ...limits, ...env } });
  const m = await proc.waitFor(/HTTP on 127\.0\.0\.1:(\d+), TCP on 127\.0\.0\.1:(\d+)/);
  return {
    url: `http://127.0.0.1:${m[1]}`,
    httpPort: Number(m[1]),
    tcpPort: Number(m[2]),
    proc,
    stop: async () => {
      proc.child.kill('SIGTERM');
      return proc.exit(10_000);
    },
  };
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}
