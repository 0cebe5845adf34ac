/**
 * The relay's resident memory idle and with N (200) stapled pairs of raw sockets, from /proc.
 * Each pair goes through the relay API as a peer would (docs/relay-api.md): the sender's and the
 * recipient's POST /join, the three POST /channel writes (x, y + hh_k, h_k: placeholders of the
 * right shape, the relay only stores them), then two TCP connections with a hello each, until both
 * read `stapled`; then 1 KiB each way through every pair, checked, so the pairs really carry data.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Bench, MeasureResult, RelayChild } from '../harness.js';
import { fmt } from '../harness.js';

const WAIT_MS = 15_000;
const IDLE_SETTLE_MS = 2000;
const PARALLEL = 8;

/** A control frame (relay API "TCP stapling"): u16 big-endian length, then that much JSON. */
function frame(body: object): Buffer {
  const json = Buffer.from(JSON.stringify(body));
  const out = Buffer.alloc(2 + json.length);
  out.writeUInt16BE(json.length, 0);
  json.copy(out, 2);
  return out;
}

async function post(url: string, body: object): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(WAIT_MS) });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** A socket that sent its hello and read the relay's reply; `extra` holds bytes after the reply. */
interface Stapled {
  socket: net.Socket;
  extra: Buffer;
}

function connectStapled(port: number, channel: string, uuid: string): Promise<Stapled> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error('no stapled reply in time')), WAIT_MS);
    const fail = (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const len = buf.readUInt16BE(0);
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const reply = JSON.parse(buf.subarray(2, 2 + len).toString()) as { type?: string };
      if (reply.type !== 'stapled') return fail(new Error(`refused: ${JSON.stringify(reply)}`));
      resolve({ socket, extra: buf.subarray(2 + len) });
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('connect', () => socket.write(frame({ v: 1, channel, uuid })));
  });
}

/** Read exactly `n` bytes from a paused stapled socket (after what came with the reply). */
function readN(s: Stapled, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = s.extra;
    const timer = setTimeout(() => reject(new Error('the echo did not arrive in time')), WAIT_MS);
    const check = () => {
      if (buf.length < n) return false;
      clearTimeout(timer);
      s.socket.off('data', onData);
      s.socket.pause();
      s.extra = buf.subarray(n);
      resolve(buf.subarray(0, n));
      return true;
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      check();
    };
    if (check()) return;
    s.socket.on('data', onData);
    s.socket.resume();
  });
}

async function staplePair(relay: RelayChild): Promise<[Stapled, Stapled]> {
  const url = relay.url;
  const s = await post(`${url}/join`, { role: 'sender' });
  const channel = s.channel as string;
  const r = await post(`${url}/join`, { role: 'recipient', channel });
  await post(`${url}/channel`, { channel, uuid: s.uuid, x: 'a1'.repeat(32) });
  await post(`${url}/channel`, { channel, uuid: r.uuid, y: 'b2'.repeat(32), hh_k: 'c3'.repeat(32) });
  await post(`${url}/channel`, { channel, uuid: s.uuid, h_k: 'd4'.repeat(32) });
  const port = s.tcpPort as number;
  const [a, b] = await Promise.all([connectStapled(port, channel, s.uuid as string), connectStapled(port, channel, r.uuid as string)]);
  const ab = randomBytes(1024);
  const ba = randomBytes(1024);
  a.socket.write(ab);
  b.socket.write(ba);
  const [gotB, gotA] = await Promise.all([readN(b, ab.length), readN(a, ba.length)]);
  if (!gotB.equals(ab) || !gotA.equals(ba)) throw new Error('a stapled pair did not carry its bytes');
  return [a, b];
}

export async function measureRelayRss(b: Bench): Promise<MeasureResult> {
  const n = b.cfg.staples;
  const relay = await b.startRelay('relay-rss');
  const sockets: net.Socket[] = [];
  try {
    await delay(IDLE_SETTLE_MS);
    const idle = relay.mem();
    b.log(`relay RSS: stapling ${n} pairs`);
    for (let i = 0; i < n; i += PARALLEL) {
      const batch = await Promise.all(Array.from({ length: Math.min(PARALLEL, n - i) }, () => staplePair(relay)));
      for (const [x, y] of batch) sockets.push(x.socket, y.socket);
    }
    await delay(500);
    const loaded = relay.mem();
    const cpuS = relay.cpuS();
    return {
      name: 'relay-rss',
      rows: [
        {
          id: 'relay-rss',
          measure: `relay RSS idle / with ${n} stapled pairs`,
          value: `${fmt(idle.rssMiB, 1)} / ${fmt(loaded.rssMiB, 1)} MiB`,
          target: '<= 64 / <= 128 MiB',
          pass: idle.rssMiB <= 64 && loaded.rssMiB <= 128,
          indicative: n !== 200,
          figures: { idleRssMiB: idle.rssMiB, stapledRssMiB: loaded.rssMiB, stapledPeakRssMiB: loaded.hwmMiB, pairs: n, relayCpuS: cpuS },
        },
      ],
      details: { idle, loaded, pairs: n, relayCpuS: cpuS },
    };
  } finally {
    for (const s of sockets) s.destroy();
    await relay.stop();
  }
}
