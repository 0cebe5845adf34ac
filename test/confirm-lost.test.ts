/**
 * The recipient's `received` lost on the way (docs/protocol.md §7.1): the sender's connection
 * drops after it sent everything, at the moment the recipient's `received` reaches it (a relay
 * process killed then, in a fleet). The recipient has every file and leaves; its proof on the
 * relay (`fin`) lets the sender end as if `received` had arrived. A real relay on loopback whose
 * join answers send the peers' TCP connections to a proxy in front of its stapler
 * (`advertiseTcp`): the proxy cuts the sender's connection (the one that carried the file) when
 * the first bytes come back to it after the file.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { receive, send, type RunningRelay } from '../src/index.js';
import { startRelay } from '../src/relay/index.js';
import { runCli } from './helpers/cli.js';

const SIZE = 3 * 1024 * 1024;
let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tsc-croc-confirm-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A TCP proxy to `target()`: a connection that sent at least SIZE bytes is cut when bytes first come back to it. */
async function cuttingProxy(target: () => number): Promise<{ port: number; cut: () => number; close: () => Promise<void> }> {
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target(), '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    let up = 0;
    client.on('data', (d: Buffer) => {
      up += d.length;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (up >= SIZE) {
        // the file went up this connection: what comes back now is `received`; it never arrives
        cuts++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    cut: () => cuts,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A relay whose join answers send TCP connections through cuttingProxy; both closed after `fn`. */
async function throughCuttingProxy(fn: (relay: RunningRelay, proxy: { cut: () => number }) => Promise<void>): Promise<void> {
  let relay: RunningRelay | undefined;
  const proxy = await cuttingProxy(() => relay!.tcpPort);
  relay = await startRelay({ host: '127.0.0.1', port: 0, tcpPort: 0, advertiseTcp: `127.0.0.1:${proxy.port}` });
  try {
    await fn(relay, proxy);
  } finally {
    await relay.close();
    await proxy.close();
  }
}

test("the sender's connection drops just as `received` comes back: the recipient has the file, and its proof on the relay ends the sender's transfer as done", { timeout: 60_000 }, async () => {
  await throughCuttingProxy(async (relay, proxy) => {
    const file = join(root, 'a.bin');
    const data = randomBytes(SIZE);
    await writeFile(file, data);
    const out = await mkdtemp(join(root, 'out-'));
    const senderEvents: string[] = [];
    let gotCode!: (c: string) => void;
    const code = new Promise<string>((r) => (gotCode = r));
    // a short reconnection window: without the proof, the sender would fail at its end (ERR_PEER_LOST)
    const timeouts = { reconnectMs: 8_000 };
    const sending = send({
      relay: relay.httpUrl,
      lan: 'off',
      files: [file],
      timeouts,
      onEvent: (e) => {
        senderEvents.push(e.type);
        if (e.type === 'code') gotCode(e.code);
      },
    });
    sending.catch(() => undefined);
    const received = await receive({ relay: relay.httpUrl, lan: 'off', code: await code, outDir: out, accept: () => true, timeouts });
    assert.equal(received.files.length, 1);
    assert.equal(createHash('sha256').update(await readFile(join(out, 'a.bin'))).digest('hex'), createHash('sha256').update(data).digest('hex'));
    const sent = await sending;
    assert.equal(proxy.cut(), 1, "the sender's connection was cut once, as `received` came back");
    assert.equal(sent.bytes, SIZE);
    assert.deepEqual(senderEvents.filter((t) => t === 'reconnecting' || t === 'done'), ['reconnecting', 'done']);
  });
});

test('the same with the built CLI: both exit 0 at once, the sender well inside its reconnection window (no rejoin left behind)', { timeout: 90_000 }, async () => {
  await throughCuttingProxy(async (relay, proxy) => {
    const file = join(root, 'b.bin');
    const data = randomBytes(SIZE);
    await writeFile(file, data);
    const out = await mkdtemp(join(root, 'out-'));
    // a 10-minute window: a sender that waited it out (or a rejoin still running) would outlast the test
    const sender = runCli(['send', '--no-local', '--no-progress', '--reconnect', '600', '--relay', relay.httpUrl, file]);
    const [, code] = await sender.waitFor(/Code is: (\S+)/);
    const recipient = runCli(['receive', '--no-local', '--no-progress', '--yes', '--relay', relay.httpUrl, '--out', out], { env: { TSC_CROC_SECRET: code! } });
    assert.equal(await recipient.exit(60_000), 0, recipient.output());
    assert.equal(await sender.exit(60_000), 0, sender.output());
    assert.equal(proxy.cut(), 1);
    assert.match(sender.stderr(), /Done: 1 file/);
    assert.equal(createHash('sha256').update(await readFile(join(out, 'b.bin'))).digest('hex'), createHash('sha256').update(data).digest('hex'));
  });
});
