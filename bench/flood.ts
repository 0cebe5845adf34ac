/**
 * Flood a real relay process from one address and watch its memory (issue 11, docs/self-hosting.md
 * "Under attack"). Spawns `node dist/tsc-croc.cjs relay` on loopback (its log on a pipe this process
 * reads, as a log collector would), then for each flood kind: RSS before, the peak while flooding
 * from 127.0.0.2 at full speed, and RSS some seconds after the flood stopped.
 *
 *   node dist/bench/flood.js [--seconds 120] [--after 15] [--kinds health,joins,channel,idle,longpoll] [--quiet] [-- relay flags]
 *
 * Kinds: health (keep-alive GET /health, many sockets), joins (POST /join far beyond the rate limit:
 * 429s), channel (POST /channel reads of one channel, beyond its rate limit), idle (as many idle HTTP
 * connections as the relay lets in), longpoll (as many long-polls as the relay lets in, renewed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { isMain } from './is-main.js';
import { procMemMiB } from './proc.js';

export type FloodKind = 'health' | 'joins' | 'channel' | 'idle' | 'longpoll';
export const FLOOD_KINDS: readonly FloodKind[] = ['health', 'joins', 'channel', 'idle', 'longpoll'];

export interface RelayChild {
  child: ChildProcess;
  httpPort: number;
  tcpPort: number;
  /** Bytes of log the relay wrote on stdout so far. */
  logBytes(): number;
  stop(): Promise<void>;
}

const CLI = fileURLToPath(new URL('../tsc-croc.cjs', import.meta.url));

/** Start `tsc-croc relay` on 127.0.0.1, ports picked by the system; resolves once it listens. */
export function startRelayChild(args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RelayChild> {
  const child = spawn(process.execPath, [CLI, 'relay', '--host', '127.0.0.1', '--port', '0', '--tcp-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let logBytes = 0;
  child.stdout!.on('data', (b: Buffer) => (logBytes += b.length));
  child.stdout!.on('error', (e) => process.stderr.write(`relay stdout: ${e.message}\n`));
  child.stderr!.on('error', (e) => process.stderr.write(`relay stderr: ${e.message}\n`));
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => fail(new Error('the relay did not start within 20 s')), 20_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.once('exit', (code) => fail(new Error(`the relay exited (${code}): ${err.slice(0, 500)}`)));
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const m = /HTTP on [^:\s]+:(\d+), TCP on [^:\s]+:(\d+)/.exec(err);
      if (m === null) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.stderr!.removeAllListeners('data');
      child.stderr!.resume();
      resolve({
        child,
        httpPort: Number(m[1]),
        tcpPort: Number(m[2]),
        logBytes: () => logBytes,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(kill);
              done();
            });
            child.kill('SIGINT');
          }),
      });
    });
  });
}

export interface FloodResult {
  kind: FloodKind;
  requests: number;
  /** Answers by HTTP status ('refused' for a connection the relay closed or reset). */
  answers: Record<string, number>;
  /** Most connections or long-polls held at once (idle, longpoll). */
  held: number;
}

export interface FloodOptions {
  port: number;
  /** The attacker's address (a local address to bind). */
  from: string;
  /** Stop flooding when this resolves or after `ms`. */
  ms: number;
  /** Concurrent sockets (health, joins, channel, longpoll), or most connections (idle). */
  sockets?: number;
}

/** One HTTP request on `agent`; resolves to its status, or 'refused'/'error'. */
function request(agent: http.Agent, port: number, method: string, path: string, body?: unknown): Promise<string> {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent, headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.statusCode)));
        res.on('error', () => resolve('error'));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'refused' : 'error'));
    req.end(data);
  });
}

async function joinOnce(agent: http.Agent, port: number): Promise<{ channel: string; uuid: string } | undefined> {
  return new Promise((resolve) => {
    const data = JSON.stringify({ role: 'sender' });
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/join', agent, headers: { 'content-type': 'application/json', 'content-length': data.length } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => (text += s));
        res.on('end', () => {
          try {
            const b = JSON.parse(text) as { channel?: string; uuid?: string };
            resolve(res.statusCode === 200 && b.channel !== undefined && b.uuid !== undefined ? { channel: b.channel, uuid: b.uuid } : undefined);
          } catch {
            resolve(undefined);
          }
        });
      },
    );
    req.on('error', () => resolve(undefined));
    req.end(data);
  });
}

/** Flood the relay at `port` from `from` for `ms` (one kind); the relay's limits decide what it gets. */
export async function flood(kind: FloodKind, o: FloodOptions): Promise<FloodResult> {
  const result: FloodResult = { kind, requests: 0, answers: {}, held: 0 };
  const count = (status: string): void => {
    result.requests++;
    result.answers[status] = (result.answers[status] ?? 0) + 1;
  };
  const deadline = Date.now() + o.ms;
  const sockets = o.sockets ?? 64;
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets, localAddress: o.from } as http.AgentOptions);
  try {
    if (kind === 'idle') {
      await idleFlood(o, deadline, sockets === 64 ? 20_000 : sockets, result, count);
      return result;
    }
    let target: { channel: string; uuid: string } | undefined;
    if (kind === 'channel' || kind === 'longpoll') {
      target = await joinOnce(agent, o.port);
      if (target === undefined) throw new Error('the flood could not join a channel to read');
    }
    let live = 0;
    const loop = async (): Promise<void> => {
      while (Date.now() < deadline) {
        let status: string;
        if (kind === 'health') status = await request(agent, o.port, 'GET', '/health');
        else if (kind === 'joins') status = await request(agent, o.port, 'POST', '/join', { role: 'sender' });
        else if (kind === 'channel') status = await request(agent, o.port, 'POST', '/channel', target);
        else {
          live++;
          result.held = Math.max(result.held, live);
          const wait = Math.min(25_000, Math.max(1, deadline - Date.now()));
          status = await request(agent, o.port, 'POST', '/channel', { ...target, wait, since: 1_000_000 });
          live--;
          // a long-poll answered at once (over a cap, or 429): do not spin
          if (status !== '200' || Date.now() < deadline) await new Promise((r) => setTimeout(r, status === '200' ? 0 : 50));
        }
        count(status);
        if (status === 'refused' || status === 'error') await new Promise((r) => setTimeout(r, 10));
      }
    };
    await Promise.all(Array.from({ length: sockets }, loop));
    return result;
  } finally {
    agent.destroy();
  }
}

/** Open connections (no request) until `max` or the relay refuses, keep them until the deadline, re-open closed ones. */
async function idleFlood(o: FloodOptions, deadline: number, max: number, result: FloodResult, count: (s: string) => void): Promise<void> {
  const open = new Set<net.Socket>();
  let stopped = false;
  const connectOne = (): Promise<boolean> =>
    new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: o.port, localAddress: o.from });
      let settled = false;
      s.on('connect', () => {
        open.add(s);
        result.held = Math.max(result.held, open.size);
        // a refused connection is answered and closed by the relay at once
        setTimeout(() => {
          if (!settled) {
            settled = true;
            resolve(!s.destroyed);
          }
        }, 5);
      });
      // the relay answers a connection over its caps (429/503) and closes it
      s.on('data', () => {
        if (!settled) {
          settled = true;
          resolve(false);
        }
      });
      s.on('error', () => {});
      s.on('close', () => {
        open.delete(s);
        if (!settled) {
          settled = true;
          count('refused');
          resolve(false);
        }
      });
    });
  try {
    while (!stopped && Date.now() < deadline) {
      if (open.size >= max) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const batch = Math.min(100, max - open.size);
      const ok = await Promise.all(Array.from({ length: batch }, connectOne));
      for (const k of ok) count(k ? 'open' : 'refused');
      if (ok.every((k) => !k)) await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    stopped = true;
    for (const s of open) s.destroy();
  }
}

// ---------------------------------------------------------------- the bench

interface Row {
  kind: FloodKind;
  seconds: number;
  requests: number;
  perSecond: number;
  answers: Record<string, number>;
  held: number;
  beforeMiB: number;
  peakMiB: number;
  afterMiB: number;
  logMiB: number;
  /** Health checks from 127.0.0.1 during the flood (one every 200 ms): how many, how many failed, the slowest. */
  probes: number;
  probesFailed: number;
  probeMaxMs: number;
  /** V8 heap used and external memory after, MiB (from the relay's /metrics). */
  heapBeforeMiB: number;
  heapAfterMiB: number;
  externalAfterMiB: number;
  metrics: Record<string, number>;
}

/** The relay's /metrics as name -> value (asked from 127.0.0.1, which the default 'loopback' mode answers). */
export async function scrape(port: number): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: false });
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const out: Record<string, number> = {};
        for (const line of text.split('\n')) {
          if (line.startsWith('#') || line.length === 0) continue;
          const i = line.lastIndexOf(' ');
          out[line.slice(0, i).replace('tsc_croc_relay_', '')] = Number(line.slice(i + 1));
        }
        resolve(out);
      });
    });
    req.on('error', () => resolve({}));
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const dashdash = argv.indexOf('--');
  const relayArgs = dashdash >= 0 ? argv.slice(dashdash + 1) : [];
  const own = dashdash >= 0 ? argv.slice(0, dashdash) : argv;
  const opt = (name: string, def: string): string => {
    const i = own.indexOf(name);
    return i >= 0 ? (own[i + 1] ?? def) : def;
  };
  const seconds = Number(opt('--seconds', '120'));
  const after = Number(opt('--after', '15'));
  const kinds = opt('--kinds', FLOOD_KINDS.join(',')).split(',') as FloodKind[];
  const from = opt('--from', '127.0.0.2');
  const rows: Row[] = [];
  for (const kind of kinds) {
    if (!FLOOD_KINDS.includes(kind)) throw new Error(`unknown flood kind ${kind}`);
    const relay = await startRelayChild(relayArgs);
    try {
      const pid = relay.child.pid!;
      await new Promise((r) => setTimeout(r, 2_000));
      const beforeMiB = procMemMiB(pid)?.rssMiB ?? NaN;
      const heapBefore = (await scrape(relay.httpPort)).nodejs_heap_size_used_bytes ?? NaN;
      let peakMiB = beforeMiB;
      const sampler = setInterval(() => {
        const m = procMemMiB(pid);
        if (m !== undefined) peakMiB = Math.max(peakMiB, m.rssMiB);
      }, 250);
      const t0 = Date.now();
      const probe = { n: 0, failed: 0, maxMs: 0 };
      let probing = true;
      const prober = (async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        while (probing) {
          const p0 = performance.now();
          const status = await Promise.race([request(agent, relay.httpPort, 'GET', '/health'), new Promise<string>((r) => setTimeout(() => r('timeout'), 5_000))]);
          probe.n++;
          if (status !== '200') probe.failed++;
          probe.maxMs = Math.max(probe.maxMs, performance.now() - p0);
          await new Promise((r) => setTimeout(r, 200));
        }
        agent.destroy();
      })();
      const r = await flood(kind, { port: relay.httpPort, from, ms: seconds * 1000 });
      const took = (Date.now() - t0) / 1000;
      probing = false;
      await prober;
      await new Promise((res) => setTimeout(res, after * 1000));
      clearInterval(sampler);
      const m = procMemMiB(pid);
      const metrics = await scrape(relay.httpPort);
      const interesting = Object.fromEntries(
        Object.entries(metrics).filter(([k, v]) => v !== 0 && /refused|shortened|client_errors|dropped|rejections|joins_total/.test(k)),
      );
      const row: Row = {
        kind,
        seconds: Math.round(took),
        requests: r.requests,
        perSecond: Math.round(r.requests / took),
        answers: r.answers,
        held: r.held,
        beforeMiB: Math.round(beforeMiB),
        peakMiB: Math.round(Math.max(peakMiB, m?.hwmMiB ?? 0)),
        afterMiB: Math.round(m?.rssMiB ?? NaN),
        logMiB: Math.round((relay.logBytes() / 2 ** 20) * 10) / 10,
        probes: probe.n,
        probesFailed: probe.failed,
        probeMaxMs: Math.round(probe.maxMs),
        heapBeforeMiB: Math.round(heapBefore / 2 ** 20),
        heapAfterMiB: Math.round((metrics.nodejs_heap_size_used_bytes ?? NaN) / 2 ** 20),
        externalAfterMiB: Math.round((metrics.nodejs_external_memory_bytes ?? NaN) / 2 ** 20),
        metrics: interesting,
      };
      rows.push(row);
      process.stdout.write(`${JSON.stringify(row)}\n`);
      if (relay.child.exitCode !== null) process.stdout.write(`relay exited with ${relay.child.exitCode}\n`);
    } finally {
      await relay.stop();
    }
  }
  process.stdout.write('\n| flood | s | requests | per s | held | RSS before | peak | after | heap before / after | log MiB | health checks failed | slowest |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n');
  for (const r of rows)
    process.stdout.write(`| ${r.kind} | ${r.seconds} | ${r.requests} | ${r.perSecond} | ${r.held} | ${r.beforeMiB} MiB | ${r.peakMiB} MiB | ${r.afterMiB} MiB | ${r.heapBeforeMiB} / ${r.heapAfterMiB} MiB | ${r.logMiB} | ${r.probesFailed} of ${r.probes} | ${r.probeMaxMs} ms |\n`);
}

if (isMain(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}
