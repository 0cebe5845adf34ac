/**
 * The reference relay: raw TCP through a socat process bridging two listening ports on 127.0.0.1
 * (as socat_relay in /work/shared/bench-anchors/tools.d/10-socat.sh): the receiver connects to
 * one port, then the relay listens on the other for the sender; no code, no crypto, no framing.
 * Without socat, the plain node relay of bench/raw-peers.ts stands in (and the output says so).
 */
import { execFileSync } from 'node:child_process';
import { basename, join } from 'node:path';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { MeasuredChild, ProcessCost } from './child.js';
import type { Bench } from './harness.js';
import { isListening } from './proc.js';

const SOCAT_BUF = '131072';

export interface ReferenceRun {
  /** socat, or the node raw relay when socat is missing. */
  tool: 'socat' | 'node-raw';
  /** From the receiver's spawn to the exit of both peers, s. */
  wallS: number;
  relay: ProcessCost;
  sender: ProcessCost;
  recipient: ProcessCost;
}

let socatFound: boolean | undefined;

/** socat, GNU time and timeout are all there (and BENCH_SOCAT is not 0, which forces the fallback). */
export function hasSocat(): boolean {
  if (socatFound === undefined) {
    if (process.env.BENCH_SOCAT === '0') return (socatFound = false);
    try {
      execFileSync('sh', ['-c', 'command -v socat && test -x /usr/bin/time && command -v timeout'], { stdio: 'ignore' });
      socatFound = true;
    } catch {
      socatFound = false;
    }
  }
  return socatFound;
}

/** A port that was free a moment ago (socat cannot report the port it got for 0). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitListening(port: number, child: MeasuredChild): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (isListening(port)) return;
    if (!child.running) throw child.failure();
    await delay(5);
  }
  throw new Error(`the reference relay does not listen on ${port} after 5 s`);
}

async function finish(children: MeasuredChild[]): Promise<number> {
  try {
    const exits = await Promise.all(children.map((c) => c.succeeded()));
    return Math.max(...exits.map((e) => e.at));
  } catch (e) {
    for (const c of children) c.kill();
    throw e;
  }
}

/** Send `file` through the reference relay into `outDir`; the received file is outDir/basename(file). */
export async function referenceTransfer(b: Bench, name: string, file: string, outDir: string): Promise<ReferenceRun> {
  const outFile = join(outDir, basename(file));
  if (hasSocat()) {
    const [rport, sport] = [await freePort(), await freePort()];
    const relay = b.spawnExec(`${name} socat relay`, 'socat', [
      '-b', SOCAT_BUF,
      `TCP-LISTEN:${rport},bind=127.0.0.1,reuseaddr`,
      `TCP-LISTEN:${sport},bind=127.0.0.1,reuseaddr`,
    ]);
    await waitListening(rport, relay);
    const recipient = b.spawnExec(`${name} socat recipient`, 'socat', ['-b', SOCAT_BUF, '-u', `TCP:127.0.0.1:${rport},retry=2000,interval=0.005`, `CREATE:${outFile}`]);
    const sender = b.spawnExec(`${name} socat sender`, 'socat', ['-b', SOCAT_BUF, '-u', `OPEN:${file},rdonly`, `TCP:127.0.0.1:${sport},retry=2000,interval=0.005`]);
    const end = await finish([sender, recipient, relay]);
    return { tool: 'socat', wallS: (end - recipient.startedAt) / 1000, relay: await relay.cost(), sender: await sender.cost(), recipient: await recipient.cost() };
  }
  const relay = b.spawnRaw(`${name} raw relay`, ['relay', '--host', '127.0.0.1', '--port', '0']);
  const line = await relay.waitForLine('its listening line', (l) => l.stream === 'stderr' && /TCP on 127\.0\.0\.1:\d+/.test(l.text));
  const port = /:(\d+)$/.exec(line.text.trim())![1]!;
  const recipient = b.spawnRaw(`${name} raw recipient`, ['receive', '--host', '127.0.0.1', '--port', port, outFile]);
  const sender = b.spawnRaw(`${name} raw sender`, ['send', '--host', '127.0.0.1', '--port', port, file]);
  const end = await finish([sender, recipient]);
  relay.signal('SIGTERM');
  await relay.succeeded();
  return { tool: 'node-raw', wallS: (end - recipient.startedAt) / 1000, relay: await relay.cost(), sender: await sender.cost(), recipient: await recipient.cost() };
}
