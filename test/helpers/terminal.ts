/**
 * The built CLI on a pseudo-terminal: script(1) runs it with a terminal as stdin, stdout and
 * stderr, relays what we type, and gives us the screen. Bounded waits only, never sleeps.
 */
import { execFileSync, spawn } from 'node:child_process';
import { CLI } from './cli.js';

/** Whether script(1) (util-linux) is here; tests that need a terminal skip without it. */
export function haveScript(): boolean {
  try {
    execFileSync('script', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** The screen without escape sequences and carriage returns. */
export const plain = (s: string): string => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replaceAll('\r', '');

export interface Terminal {
  /** Everything shown so far, escape sequences included. */
  screen: () => string;
  /** The same, plain(). */
  plain: () => string;
  /** Resolves once the screen from offset `from` (of screen()) on, made plain, matches `re`; rejects if the CLI exits first. */
  seen: (re: RegExp, from?: number) => Promise<void>;
  /** Type keys (a burst: a paste, as far as the CLI can tell). */
  type: (keys: string) => void;
  /** Type `keys` once `re` shows after the last answer's point. */
  answer: (re: RegExp, keys: string) => Promise<void>;
  /** Resolves with the exit code (the CLI's, through script -e). */
  exit: () => Promise<number>;
  kill: () => void;
}

/**
 * Run `tsc-croc ARGS` on a pseudo-terminal. The environment is ours without any TSC_CROC_*,
 * NO_COLOR or FORCE_COLOR, with TERM=xterm, the local network on loopback only, `configHome` as
 * XDG_CONFIG_HOME, then `env`. Killed after `timeoutMs`.
 */
export function onTerminal(args: string[], opts: { env?: NodeJS.ProcessEnv; configHome: string; timeoutMs?: number }): Terminal {
  const q = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;
  const command = [process.execPath, CLI, ...args].map(q).join(' ');
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('TSC_CROC_')) delete env[k];
  delete env.NO_COLOR;
  delete env.FORCE_COLOR;
  Object.assign(env, { XDG_CONFIG_HOME: opts.configHome, TERM: 'xterm', TSC_CROC_INTERFACES: 'lo' }, opts.env);
  const child = spawn('script', ['-qefc', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  const waiters = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (d: string) => ((screen += d), waiters.forEach((w) => w())));
  const exited = new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? -1)));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  void exited.then(() => clearTimeout(timer));
  const seen = (re: RegExp, from = 0) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (re.test(plain(screen.slice(from)))) {
          waiters.delete(check);
          resolve();
        } else if (child.exitCode !== null || child.signalCode !== null) {
          waiters.delete(check);
          reject(new Error(`exited before ${re}:\n${JSON.stringify(screen)}`));
        }
      };
      waiters.add(check);
      void exited.then(check);
      check();
    });
  let mark = 0;
  return {
    screen: () => screen,
    plain: () => plain(screen),
    seen,
    type: (keys) => void child.stdin.write(keys),
    answer: async (re, keys) => {
      await seen(re, mark);
      mark = screen.length;
      child.stdin.write(keys);
    },
    exit: () => exited,
    kill: () => void child.kill('SIGKILL'),
  };
}
