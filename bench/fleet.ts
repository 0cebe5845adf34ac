/**
 * The relay fleet run of issue 13 (bench/README.md "Fleet"): one real redis-server, three
 * `tsc-croc relay` processes (each `--store redis://…` and `--advertise-tcp 127.0.0.1`), a real
 * HAProxy round-robin in front of their HTTP ports, all on loopback free ports; then
 *
 * - phase `kill`: N concurrent library transfers (senders in some worker processes, recipients in
 *   others, lan 'off', every request through HAProxy), `kill -9` of one relay process mid-run;
 * - phase `redis`: N more, the redis-server killed and restarted (empty) mid-run;
 * - phase `throughput`: T concurrent transfers of a big file through one process (memory store)
 *   and through the fleet: aggregate MiB/s, relay CPU per GiB, Redis commands per transfer.
 *
 * Every received file is hashed against its source. A summary table on stdout, JSON in
 * bench/results/fleet-<time>.json.
 *
 *   node dist/bench/fleet.js [--transfers 100] [--size-mib 8] [--big-mib 64] [--big-transfers 8]
 *                            [--workers 4] [--phases kill,redis,throughput]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as pjoin } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { receive, send } from '../src/index.js';
import { startCliRelay } from '../test/helpers/cli.js';
import { RedisServer, freePort } from '../test/helpers/redis.js';
import { HAPROXY, haproxyConfig } from '../test/helpers/haproxy.js';

const SELF = fileURLToPath(import.meta.url);
const CLK = 100; // USER_HZ of /proc/<pid>/stat
/** Every child this run started, killed if it ends early (an error, Ctrl-C). */
const children = new Set<ChildProcess>();

// ---------------------------------------------------------------- worker side

interface WorkerSpec {
  role: 'sender' | 'recipient';
  url: string;
  /** sender: files by transfer index; recipient: output folder */
  files?: Record<number, string>;
  outDir?: string;
}

/** A worker: senders print `{i, code}` then `{i, sent}`; recipients read `{i, code}` lines on stdin and print `{i, sha}`. */
async function worker(spec: WorkerSpec): Promise<void> {
  const say = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');
  const run = async (i: number, fn: (onEvent: (e: { type: string; [k: string]: unknown }) => void) => Promise<object>): Promise<void> => {
    let reconnects = 0;
    let live = false;
    try {
      const r = await fn((e) => {
        if (e.type === 'reconnected') reconnects++;
        // the recipient's first progress: its session moved data, so a drop from now on is reconnected
        if (!live && spec.role === 'recipient' && e.type === 'progress') (live = true), say({ i, live });
        if (e.type === 'code') say({ i, code: e.code });
      });
      say({ i, ok: true, reconnects, ...r });
    } catch (e) {
      const err = e as { code?: string; message?: string };
      say({ i, ok: false, reconnects, error: err.code ?? 'unknown', message: String(err.message ?? e).slice(0, 300) });
    }
  };
  if (spec.role === 'sender') {
    await Promise.all(
      Object.entries(spec.files!).map(([k, file]) =>
        run(Number(k), async (onEvent) => ({ bytes: (await send({ relay: spec.url, lan: 'off', files: [file], onEvent: onEvent as never })).bytes })),
      ),
    );
    return;
  }
  const runs: Promise<void>[] = [];
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue;
    const { i, code } = JSON.parse(line) as { i: number; code: string };
    const out = pjoin(spec.outDir!, String(i));
    runs.push(
      run(i, async (onEvent) => {
        await mkdir(out, { recursive: true });
        const got = await receive({ relay: spec.url, lan: 'off', code, outDir: out, accept: () => true, onEvent: onEvent as never });
        return { sha: await sha256File(got.files[0]!.path) };
      }),
    );
  }
  await Promise.all(runs);
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

// ---------------------------------------------------------------- main side

interface Msg {
  i: number;
  code?: string;
  /** the recipient's first progress event: the transfer moves data */
  live?: boolean;
  ok?: boolean;
  reconnects?: number;
  sha?: string;
  error?: string;
  message?: string;
}

interface Worker {
  child: ChildProcess;
  done: Promise<void>;
}

function startWorker(spec: WorkerSpec, onMsg: (m: Msg) => void): Worker {
  const child = spawn(process.execPath, [SELF, '--worker'], { env: { ...process.env, FLEET_WORKER: JSON.stringify(spec) }, stdio: ['pipe', 'pipe', 'inherit'] });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      onMsg(JSON.parse(l) as Msg);
    } catch {
      process.stderr.write(`worker: ${l}\n`);
    }
  });
  children.add(child);
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, done };
}

/** utime+stime of a process in seconds (Linux /proc), 0 once it is gone. */
async function cpuOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  try {
    const s = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK;
  } catch {
    return 0;
  }
}

/** CPU of a process and its direct children (HAProxy -W: the master and its worker). */
async function treeCpuOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const kids = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  const all = await Promise.all([pid, ...kids.split(' ').filter(Boolean).map(Number)].map(cpuOf));
  return all.reduce((x, y) => x + y, 0);
}

function redisInfo(port: number): Record<string, string> {
  const r = spawnSync('redis-cli', ['-p', String(port), 'INFO', 'all'], { encoding: 'utf8', timeout: 5_000 });
  const o: Record<string, string> = {};
  for (const l of (r.stdout ?? '').split('\n')) {
    const k = l.indexOf(':');
    if (k > 0) o[l.slice(0, k)] = l.slice(k + 1).trim();
  }
  return o;
}

async function scrape(url: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  try {
    const body = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3_000) })).text();
    for (const l of body.split('\n')) {
      if (l.startsWith('#') || l === '') continue;
      const k = l.lastIndexOf(' ');
      m.set(l.slice(0, k), Number(l.slice(k + 1)));
    }
  } catch {
    /* a killed process has no metrics */
  }
  return m;
}
const sumOf = (m: Map<string, number>, prefix: string): number => [...m].filter(([k]) => k === prefix || k.startsWith(prefix + '{')).reduce((a, [, v]) => a + v, 0);

type CliRelay = Awaited<ReturnType<typeof startCliRelay>>;

interface Fleet {
  url: string;
  relays: CliRelay[];
  proxy: ChildProcess | undefined;
  stop: () => Promise<void>;
}

// every peer here comes from 127.0.0.1: lift the per-address limits (a reconnecting recipient's joins of a
// channel its sender has not re-created yet count as misses, --join-miss-limit)
const LIMITS = { TSC_CROC_RELAY_JOIN_MISS_LIMIT: '100000', TSC_CROC_RELAY_JOIN_RATE: '1000000', TSC_CROC_RELAY_CHANNEL_RATE: '10000000', TSC_CROC_RELAY_MAX_CHANNELS_PER_ADDRESS: '100000' };

async function startFleet(root: string, redis: RedisServer | undefined, processes: number, tag: string): Promise<Fleet> {
  const env = redis ? { ...LIMITS, TSC_CROC_RELAY_STORE: redis.url, TSC_CROC_RELAY_STORE_PREFIX: `${tag}:`, TSC_CROC_RELAY_ADVERTISE_TCP: '127.0.0.1' } : LIMITS;
  const relays = await Promise.all(Array.from({ length: processes }, () => startCliRelay(env)));
  for (const r of relays) children.add(r.proc.child);
  const stopRelays = async (): Promise<void> => {
    await Promise.allSettled(relays.map((r) => (r.proc.child.exitCode === null && r.proc.child.signalCode === null ? r.stop() : undefined)));
  };
  if (redis === undefined) return { url: relays[0]!.url, relays, proxy: undefined, stop: stopRelays };
  const front = await freePort();
  const cfg = pjoin(root, `haproxy-${tag}.cfg`);
  await writeFile(
    cfg,
    haproxyConfig(front, relays.map((r) => r.httpPort), { maxconn: 4000, timeoutS: 300 }),
  );
  const proxy = spawn(HAPROXY, ['-W', '-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proxy);
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const fail = reject;
    reject = (e: Error) => void stopRelays().finally(() => fail(e));
    const t = setTimeout(() => reject(new Error(`haproxy did not start: ${log}`)), 10_000);
    const on = (d: Buffer): void => {
      log += d.toString();
      if (/Loading success/.test(log)) (clearTimeout(t), resolve());
    };
    proxy.stdout!.on('data', on);
    proxy.stderr!.on('data', on);
    proxy.once('exit', () => (clearTimeout(t), reject(new Error(`haproxy exited: ${log}`))));
  });
  proxy.stdout!.resume();
  proxy.stderr!.resume();
  const url = `http://127.0.0.1:${front}`;
  for (let k = 0; k < 50 && (await fetch(`${url}/health`).then((r) => r.status, () => 0)) !== 200; k++) await new Promise((r) => setTimeout(r, 100));
  return {
    url,
    relays,
    proxy,
    stop: async () => {
      proxy.kill('SIGTERM');
      await stopRelays();
    },
  };
}

interface Outcome {
  live: Set<number>;
  sent: Map<number, Msg>;
  got: Map<number, Msg>;
  hashes: string[];
  wallS: number;
}

/** N transfers of `files`, senders spread over `workers` processes and recipients over as many others; `during` runs meanwhile. */
async function transfers(url: string, files: string[], hashes: string[], outDir: string, workers: number, during?: (o: Outcome) => Promise<void>): Promise<Outcome> {
  const o: Outcome = { live: new Set(), sent: new Map(), got: new Map(), hashes, wallS: 0 };
  const t0 = performance.now();
  const recipients = Array.from({ length: workers }, (_, w) => startWorker({ role: 'recipient', url, outDir: pjoin(outDir, `w${w}`) }, (m) => (m.live ? o.live.add(m.i) : m.code === undefined && o.got.set(m.i, m))));
  // transfer i: sender in worker i % W, recipient in worker (i + 1) % W of the other group
  const senders = Array.from({ length: workers }, (_, w) => {
    const mine: Record<number, string> = {};
    files.forEach((f, i) => i % workers === w && (mine[i] = f));
    return startWorker({ role: 'sender', url, files: mine }, (m) => {
      if (m.live) o.live.add(m.i);
      else if (m.code !== undefined) recipients[(m.i + 1) % workers]!.child.stdin!.write(JSON.stringify({ i: m.i, code: m.code }) + '\n');
      else {
        o.sent.set(m.i, m);
        // a sender that failed before its recipient joined: nobody else will end the recipient
        if (m.ok === false && !o.got.has(m.i)) o.got.set(m.i, { i: m.i, ok: false, error: 'sender-failed', message: m.message });
        if (o.sent.size === files.length) recipients.forEach((r) => r.child.stdin!.end());
      }
    });
  });
  const bounded = setTimeout(() => [...senders, ...recipients].forEach((w) => w.child.kill('SIGKILL')), 240_000);
  const side = during?.(o);
  await Promise.all([...senders, ...recipients].map((w) => w.done));
  clearTimeout(bounded);
  await side;
  o.wallS = (performance.now() - t0) / 1000;
  return o;
}

interface PhaseReport {
  phase: string;
  transfers: number;
  completedVerified: number;
  /** the recipient has the file, hash-verified (its sender may still have failed: a lost final confirmation) */
  deliveredVerified: number;
  failed: number;
  errors: Record<string, number>;
  reconnectedTransfers: number;
  splitAcrossProcesses: number;
  staplesPerProcess: number[];
  [k: string]: unknown;
}

function tally(phase: string, o: Outcome, n: number): PhaseReport {
  let ok = 0;
  let delivered = 0;
  let reconnected = 0;
  const errors: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const g = o.got.get(i);
    const s = o.sent.get(i);
    if (g?.ok && g.sha === o.hashes[i]) delivered++;
    if (g?.ok && s?.ok && g.sha === o.hashes[i]) ok++;
    else {
      const side = (m: Msg | undefined): string => (m === undefined ? 'no outcome' : m.ok === false ? `${m.error}: ${m.message}` : m.sha !== undefined && m.sha !== o.hashes[i] ? 'hash mismatch' : 'ok');
      const why = `recipient ${side(g)} / sender ${side(s)}`;
      errors[why] = (errors[why] ?? 0) + 1;
    }
    if ((g?.reconnects ?? 0) + (s?.reconnects ?? 0) > 0) reconnected++;
  }
  return { phase, transfers: n, completedVerified: ok, deliveredVerified: delivered, failed: n - ok, errors, reconnectedTransfers: reconnected, splitAcrossProcesses: 0, staplesPerProcess: [], wallS: +o.wallS.toFixed(2) };
}

async function makeFiles(dir: string, n: number, bytes: number, same = false): Promise<{ files: string[]; hashes: string[] }> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const hashes: string[] = [];
  let shared: Buffer | undefined;
  for (let i = 0; i < n; i++) {
    const data = same ? (shared ??= randomBytes(bytes)) : randomBytes(bytes + i);
    const f = pjoin(dir, `f${i}.bin`);
    await writeFile(f, data);
    files.push(f);
    hashes.push(createHash('sha256').update(data).digest('hex'));
  }
  return { files, hashes };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const arg = (name: string, d: string): string => {
    const k = process.argv.indexOf(`--${name}`);
    return k > 0 && process.argv[k + 1] !== undefined ? process.argv[k + 1]! : d;
  };
  const N = Number(arg('transfers', '100'));
  const sizeMiB = Number(arg('size-mib', '8'));
  const bigMiB = Number(arg('big-mib', '64'));
  const bigN = Number(arg('big-transfers', '8'));
  const W = Number(arg('workers', '4'));
  const phases = arg('phases', 'kill,redis,throughput').split(',');
  const out = arg('json', '');
  const root = await mkdtemp(pjoin(tmpdir(), 'tsc-croc-fleet-bench-'));
  const redis = await RedisServer.start();
  const reports: PhaseReport[] = [];
  const fleets: Fleet[] = [];
  const log = (s: string): void => void process.stdout.write(`# ${s}\n`);
  try {
    const small = phases.some((p) => p === 'kill' || p === 'redis') ? await makeFiles(pjoin(root, 'small'), N, sizeMiB * 1024 * 1024) : undefined;

    if (phases.includes('kill')) {
      const f = await startFleet(root, redis, 3, 'kill');
      fleets.push(f);
      let stapledOnVictim = 0;
      let killedAtS = 0;
      const t0 = performance.now();
      const o = await transfers(f.url, small!.files, small!.hashes, pjoin(root, 'out-kill'), W, async (o) => {
        // kill -9 relay 0 once every transfer moves data (or has ended), bounded to a minute; a transfer
        // still in its handshake when its stapler dies fails (reconnection is for a session that moved data)
        for (let k = 0; k < 600; k++) {
          const pairs = await Promise.all(f.relays.map(async (r) => sumOf(await scrape(r.url), 'tsc_croc_relay_stapled_pairs')));
          if ((new Set([...o.live, ...o.got.keys()]).size >= N && pairs[0]! > 0) || o.got.size >= N / 4) {
            stapledOnVictim = pairs[0]!;
            break;
          }
          await sleep(100);
        }
        f.relays[0]!.proc.child.kill('SIGKILL');
        killedAtS = (performance.now() - t0) / 1000;
        log(`kill -9 relay 0 (pid ${f.relays[0]!.proc.child.pid}) at ${killedAtS.toFixed(1)} s, ${stapledOnVictim} pairs stapled on it, ${o.live.size} moving data, ${o.got.size} ended so far`);
      });
      const rep = tally('kill -9 one of 3 relays', o, N);
      const survivors = f.relays.slice(1);
      const ms = await Promise.all(survivors.map((r) => scrape(r.url)));
      rep.staplesPerProcess = ['killed', ...ms.map((m) => sumOf(m, 'tsc_croc_relay_staples_total'))] as never;
      rep.splitAcrossProcesses = ms.reduce((a, m) => a + sumOf(m, 'tsc_croc_relay_joins_elsewhere_total'), 0);
      Object.assign(rep, { stapledOnKilled: stapledOnVictim, killedAtS: +killedAtS.toFixed(2), sizeMiB, note: 'splitAcrossProcesses counts joins on the surviving processes only (recipient and sender reconnect joins included)' });
      reports.push(rep);
      await f.stop();
    }

    if (phases.includes('redis')) {
      const f = await startFleet(root, redis, 3, 'redis');
      fleets.push(f);
      let downAtS = 0;
      let upAtS = 0;
      let stapled = 0;
      const t0 = performance.now();
      const o = await transfers(f.url, small!.files, small!.hashes, pjoin(root, 'out-redis'), W, async (o) => {
        for (let k = 0; k < 600; k++) {
          const pairs = await Promise.all(f.relays.map(async (r) => sumOf(await scrape(r.url), 'tsc_croc_relay_stapled_pairs')));
          stapled = pairs.reduce((a, b) => a + b, 0);
          if (stapled >= N / 2 || o.got.size >= N / 4) break;
          await sleep(100);
        }
        await redis.kill();
        downAtS = (performance.now() - t0) / 1000;
        log(`redis-server killed at ${downAtS.toFixed(1)} s (${stapled} pairs stapled, ${o.live.size} moving data, ${o.got.size} ended); restarting (empty) in 2 s`);
        await sleep(2_000);
        await redis.restart();
        upAtS = (performance.now() - t0) / 1000;
      });
      const rep = tally('Redis killed + restarted empty', o, N);
      const ms = await Promise.all(f.relays.map((r) => scrape(r.url)));
      rep.staplesPerProcess = ms.map((m) => sumOf(m, 'tsc_croc_relay_staples_total'));
      rep.splitAcrossProcesses = ms.reduce((a, m) => a + sumOf(m, 'tsc_croc_relay_joins_elsewhere_total'), 0);
      Object.assign(rep, { stapledAtRedisKill: stapled, redisDownAtS: +downAtS.toFixed(2), redisUpAtS: +upAtS.toFixed(2), sizeMiB, storeUnavailable503: ms.map((m) => [...m].filter(([k]) => k.includes('503')).reduce((a, [, v]) => a + v, 0)) });
      reports.push(rep);
      await f.stop();
    }

    if (phases.includes('throughput')) {
      const big = await makeFiles(pjoin(root, 'big'), bigN, bigMiB * 1024 * 1024, true);
      for (const [label, processes, store] of [
        ['1 process, memory store', 1, false],
        ['3 processes + Redis + HAProxy', 3, true],
      ] as const) {
        const f = await startFleet(root, store ? redis : undefined, processes, `tp${processes}`);
        fleets.push(f);
        const pids = [...f.relays.map((r) => r.proc.child.pid), f.proxy?.pid];
        const cpu0 = await Promise.all(pids.map(treeCpuOf));
        const r0 = redisInfo(redis.port);
        const o = await transfers(f.url, big.files, big.hashes.map((h, i) => (i === 0 ? h : big.hashes[0]!)), pjoin(root, `out-tp${processes}`), Math.min(W, bigN));
        const cpu1 = await Promise.all(pids.map(treeCpuOf));
        const r1 = redisInfo(redis.port);
        const rep = tally(`throughput: ${label}`, o, bigN);
        const gib = (bigN * bigMiB) / 1024;
        const relayCpu = f.relays.reduce((a, _, k) => a + cpu1[k]! - cpu0[k]!, 0);
        const proxyCpu = f.proxy ? cpu1[pids.length - 1]! - cpu0[pids.length - 1]! : 0;
        const cmds = store ? Number(r1.total_commands_processed) - Number(r0.total_commands_processed) : 0;
        const redisCpu = store ? Number(r1.used_cpu_sys) + Number(r1.used_cpu_user) - Number(r0.used_cpu_sys) - Number(r0.used_cpu_user) : 0;
        const ms = await Promise.all(f.relays.map((r) => scrape(r.url)));
        rep.staplesPerProcess = ms.map((m) => sumOf(m, 'tsc_croc_relay_staples_total'));
        rep.splitAcrossProcesses = ms.reduce((a, m) => a + sumOf(m, 'tsc_croc_relay_joins_elsewhere_total'), 0);
        const storeCalls = ms.reduce((a, m) => a + sumOf(m, 'tsc_croc_relay_store_seconds_count'), 0);
        const storeSum = ms.reduce((a, m) => a + sumOf(m, 'tsc_croc_relay_store_seconds_sum'), 0);
        Object.assign(rep, {
          fileMiB: bigMiB,
          aggregateMiBps: +((bigN * bigMiB) / o.wallS).toFixed(1),
          relayCpuS: +relayCpu.toFixed(2),
          relayCpuSPerGiB: +(relayCpu / gib).toFixed(2),
          haproxyCpuS: +proxyCpu.toFixed(2),
          redisCpuS: +redisCpu.toFixed(3),
          redisCommands: cmds,
          redisCommandsPerTransfer: store ? +(cmds / bigN).toFixed(1) : 0,
          storeCallsPerTransfer: store ? +(storeCalls / bigN).toFixed(1) : 0,
          storeMeanMs: storeCalls > 0 ? +((storeSum / storeCalls) * 1000).toFixed(3) : 0,
          // Redis calls per command over the run (INFO commandstats: cmdstat_X:calls=N,...)
          redisCommandCalls: Object.fromEntries(
            Object.keys(r1)
              .filter((k) => k.startsWith('cmdstat_'))
              .map((k) => [k.slice(8), Number(/calls=(\d+)/.exec(r1[k]!)?.[1] ?? 0) - Number(/calls=(\d+)/.exec(r0[k] ?? '')?.[1] ?? 0)] as const)
              .filter(([, n]) => n > 0),
          ),
        });
        reports.push(rep);
        await f.stop();
      }
    }
  } finally {
    for (const f of fleets) await f.stop().catch(() => undefined);
    await redis.stop();
    await rm(root, { recursive: true, force: true });
  }

  // summary
  const rows = reports.map((r) => [r.phase, `${r.completedVerified}/${r.transfers} (${r.deliveredVerified})`, String(r.failed), String(r.reconnectedTransfers), String(r.splitAcrossProcesses), JSON.stringify(r.staplesPerProcess), `${r.wallS} s`, r.aggregateMiBps !== undefined ? `${r.aggregateMiBps} MiB/s, ${r.relayCpuSPerGiB} CPU s/GiB, ${r.redisCommandsPerTransfer} redis cmds/transfer` : r.stapledOnKilled !== undefined ? `${r.stapledOnKilled} stapled on the killed process` : `${r.stapledAtRedisKill} stapled at the Redis kill`]);
  const head = ['phase', 'both ok (file arrived)', 'failed', 'reconnected', 'joins elsewhere', 'staples/process', 'wall', 'notes'];
  const w = head.map((h, k) => Math.max(h.length, ...rows.map((r) => r[k]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(r.map((c, k) => c.padEnd(w[k]!)).join(' | ') + '\n');
  for (const r of reports) for (const [e, n] of Object.entries(r.errors)) process.stdout.write(`  ${r.phase}: ${n} × ${e}\n`);
  const file = out !== '' ? out : fileURLToPath(new URL(`../../bench/results/fleet-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url));
  await mkdir(pjoin(file, '..'), { recursive: true });
  await writeFile(file, JSON.stringify({ at: new Date().toISOString(), node: process.version, transfers: N, sizeMiB, workers: W, reports }, null, 2) + '\n');
  process.stdout.write(`# JSON: ${file}\n`);
}

if (process.argv.includes('--worker')) await worker(JSON.parse(process.env.FLEET_WORKER!) as WorkerSpec);
else if (process.argv[1] === SELF) {
  process.once('exit', () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')));
  for (const [sig, code] of [['SIGINT', 130], ['SIGHUP', 129], ['SIGTERM', 143]] as const) process.once(sig, () => process.exit(code));
  await main();
}
