/**
 * wormhole-william's side of `npm run bench`, run by bench/ww.ts inside a private network, mount
 * and pid namespace (`unshare --fork --pid --kill-child --net --mount --propagation private
 * --mount-proc`), as the anchors harness does (/work/shared/bench-anchors): the namespace's only
 * interface is lo, so wormhole-william (which advertises the machine's other addresses as direct
 * hints) can only use the local transit relay, and a private /etc/hosts maps its hard-wired transit
 * relay name (transit.magic-wormhole.io) to 127.0.0.1. Nothing leaves the namespace; when this
 * process ends, the kernel ends every process of the pid namespace (the two servers included).
 *
 *   node ww-netns.js WORKDIR TIMEOUT_MS
 *
 * Starts the mailbox server (127.0.0.1:4000) and the transit relay (127.0.0.1:4001) with twist3,
 * prints {"ready":true} (or {"ready":false,"error":...}), then reads one JSON request a line on
 * stdin, {"id","kind":"file"|"dir","path","outDir","code"}, runs one transfer (the receiver
 * started first, then the sender, each under GNU time; the receiver answers "y") and answers
 * {"id","ok","wallS","sender","recipient"} with GNU time's text for each side, or {"id","ok":false,"error"}.
 * Ends at the end of stdin.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { gnuTimeArgs } from './child.js';

const MAILBOX_PORT = 4000;
const TRANSIT_PORT = 4001;
const MAILBOX_URL = `ws://127.0.0.1:${MAILBOX_PORT}/v1`;

const [workDir, timeoutArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg);
const reply = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

/** The interfaces of this process's network namespace (/proc/net/dev, per namespace). */
function interfaces(): string[] {
  return readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0]!.trim())
    .filter((n) => n !== '');
}

async function waitPort(port: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return true;
    await delay(100);
  }
  return false;
}

const servers: ChildProcess[] = [];

function startServers(): void {
  servers.push(
    spawn('twist3', ['wormhole-mailbox', `--port=tcp:${MAILBOX_PORT}:interface=127.0.0.1`, `--channel-db=${join(workDir!, 'mailbox.sqlite')}`], { stdio: 'ignore' }),
    spawn('twist3', ['transitrelay', `--port=tcp:${TRANSIT_PORT}:interface=127.0.0.1`], { stdio: 'ignore' }),
  );
}

interface Request {
  id: number;
  kind: 'file' | 'dir';
  path: string;
  outDir: string;
  code: string;
}

function run(args: string[], statsFile: string, cwd: string, stdin?: string): { child: ChildProcess; done: Promise<number | null> } {
  const child = spawn('/usr/bin/time', [...gnuTimeArgs(statsFile), 'wormhole-william', '--relay-url', MAILBOX_URL, ...args], {
    cwd,
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
  child.stdin!.end(stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = once(child, 'close').then(([code]) => {
    clearTimeout(timer);
    if (code !== 0) throw new Error(`wormhole-william ${args[0]} exited with ${String(code)}: ${err.trim().slice(-500)}`);
    return code as number;
  });
  return { child, done };
}

async function transfer(r: Request): Promise<object> {
  const rs = join(workDir!, `ww-${r.id}-recipient.time`);
  const ss = join(workDir!, `ww-${r.id}-sender.time`);
  const t0 = performance.now();
  const recipient = run(['receive', '--hide-progress', r.code], rs, r.outDir, 'y\n');
  const sender = run(['send', '--hide-progress', '--code', r.code, r.path], ss, workDir!);
  try {
    await Promise.all([recipient.done, sender.done]);
  } catch (e) {
    recipient.child.kill('SIGKILL');
    sender.child.kill('SIGKILL');
    throw e;
  }
  const wallS = (performance.now() - t0) / 1000;
  return { id: r.id, ok: true, wallS, sender: readFileSync(ss, 'utf8'), recipient: readFileSync(rs, 'utf8') };
}

async function main(): Promise<void> {
  const others = interfaces().filter((n) => n !== 'lo');
  if (others.length > 0) throw new Error(`not in a private network namespace: interfaces ${others.join(', ')}`);
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const hosts = join(workDir!, 'hosts');
  writeFileSync(hosts, '127.0.0.1 localhost\n127.0.0.1 transit.magic-wormhole.io relay.magic-wormhole.io\n');
  execFileSync('mount', ['--bind', hosts, '/etc/hosts']);
  startServers();
  if (!(await waitPort(MAILBOX_PORT, 30_000)) || !(await waitPort(TRANSIT_PORT, 30_000))) throw new Error('the mailbox server or transit relay did not start');
  reply({ ready: true });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue;
    const r = JSON.parse(line) as Request;
    try {
      reply(await transfer(r));
    } catch (e) {
      reply({ id: r.id, ok: false, error: e instanceof Error ? e.message : String(e) });
    }
  }
}

try {
  await main();
} catch (e) {
  reply({ ready: false, error: e instanceof Error ? e.message : String(e) });
  process.exitCode = 1;
} finally {
  for (const s of servers) s.kill('SIGTERM');
}
