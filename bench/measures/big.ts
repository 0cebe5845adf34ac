/**
 * The big file through a relay (1 GiB), in rounds of (tsc-croc, socat relay) with the order
 * alternating: total CPU of sender + recipient + relay, throughput against the socat relay in the
 * same round, the relay's CPU per GiB, the peers' peak RSS. The peers' CPU is the whole process
 * (start-up included), from their own resource usage; the relay's is what it used during the
 * transfer (/proc, before the sender starts and after both peers exit).
 */
import { basename, dirname, join } from 'node:path';
import { formatSize } from '../report.js';
import { sha256File, warmPageCache } from '../files.js';
import type { Bench, MeasureResult, PairRun, Row } from '../harness.js';
import { GiB, MiB, fmt, median } from '../harness.js';
import { hasSocat, referenceTransfer, type ReferenceRun } from '../socat.js';
import { randomSource } from './source.js';

export interface BigRound {
  ours: PairRun & { relayCpuS: number; relayPeakRssMiB: number; mibPerS: number; totalCpuS: number };
  reference: ReferenceRun & { mibPerS: number };
  ratio: number;
}

/** Shared with the huge measure: the peers' peak RSS at the big size. */
export interface BigShared {
  bytes: number;
  peerPeakRssMiB: { sender: number; recipient: number };
}

/** Shared by the 1 KiB measure: each side's CPU for a transfer of next to nothing (start-up, handshake). */
export interface TinyShared {
  senderCpuS: number;
  recipientCpuS: number;
}

/**
 * A peer's CPU for 1 GiB from a run of `bytes`: its fixed cost (the 1 KiB run's, when known) plus
 * the rest scaled by GiB / bytes. With bytes = 1 GiB it is the measured figure.
 */
function perGiB(cpuS: number, fixedS: number | undefined, bytes: number): number {
  const k = GiB / bytes;
  if (fixedS === undefined || k === 1) return cpuS * k;
  return fixedS + Math.max(0, cpuS - fixedS) * k;
}

export async function measureBig(b: Bench, shared: { big?: BigShared; tiny?: TinyShared }): Promise<MeasureResult> {
  const bytes = b.cfg.bigBytes;
  const size = formatSize(bytes);
  const { file, expected } = await randomSource(b, 'big', bytes);
  const relay = await b.startRelay('big');
  const rounds: BigRound[] = [];
  try {
    for (let i = 0; i < b.cfg.bigRuns; i++) {
      const runOurs = async () => {
        const out = await b.dir('big-out');
        await warmPageCache(out, bytes);
        b.log(`${size}: round ${i + 1}/${b.cfg.bigRuns}, tsc-croc`);
        const cpu0 = relay.cpuS();
        const run = await b.transfer(`big ${i + 1}`, relay, [file], out);
        const relayCpuS = relay.cpuS() - cpu0;
        const relayPeakRssMiB = relay.mem().hwmMiB;
        if ((await sha256File(join(out, basename(file)))) !== expected) throw new Error(`${size}: the received file differs`);
        await b.remove(out);
        return { ...run, relayCpuS, relayPeakRssMiB, mibPerS: bytes / MiB / run.wallS, totalCpuS: run.sender.cpuS + run.recipient.cpuS + relayCpuS };
      };
      const runRef = async () => {
        const out = await b.dir('big-ref');
        await warmPageCache(out, bytes);
        b.log(`${size}: round ${i + 1}/${b.cfg.bigRuns}, ${hasSocat() ? 'socat' : 'node raw'} relay`);
        const run = await referenceTransfer(b, `big ref ${i + 1}`, file, out);
        if ((await sha256File(join(out, basename(file)))) !== expected) throw new Error(`${size}: the reference relay's received file differs`);
        await b.remove(out);
        return { ...run, mibPerS: bytes / MiB / run.wallS };
      };
      let ours: BigRound['ours'];
      let reference: BigRound['reference'];
      if (i % 2 === 0) {
        ours = await runOurs();
        reference = await runRef();
      } else {
        reference = await runRef();
        ours = await runOurs();
      }
      rounds.push({ ours, reference, ratio: ours.mibPerS / reference.mibPerS });
    }
  } finally {
    await relay.stop();
    await b.remove(dirname(file));
  }
  const scale = GiB / bytes;
  const mid = (f: (r: BigRound) => number) => median(rounds.map(f));
  const sCpu = perGiB(mid((r) => r.ours.sender.cpuS), shared.tiny?.senderCpuS, bytes);
  const rCpu = perGiB(mid((r) => r.ours.recipient.cpuS), shared.tiny?.recipientCpuS, bytes);
  const ratio = median(rounds.map((r) => r.ratio));
  const relayCpu = mid((r) => r.ours.relayCpuS) * scale;
  const total = sCpu + rCpu + relayCpu;
  const how =
    scale === 1 ? '' : shared.tiny ? `, extrapolated from ${size} (start-up from the 1 KiB runs)` : `, scaled from ${size} (start-up scaled too: too high)`;
  const sRss = Math.max(...rounds.map((r) => r.ours.sender.peakRssMiB));
  const rRss = Math.max(...rounds.map((r) => r.ours.recipient.peakRssMiB));
  shared.big = { bytes, peerPeakRssMiB: { sender: sRss, recipient: rRss } };
  const tool = rounds[0]?.reference.tool === 'socat' ? 'socat relay' : 'node raw relay (no socat)';
  const indicative = bytes !== GiB;
  const rows: Row[] = [
    {
      id: 'big-cpu',
      measure: `1 GiB via relay: CPU sender + recipient + relay`,
      value: `${fmt(total, 2)} s (${fmt(sCpu, 2)} + ${fmt(rCpu, 2)} + ${fmt(relayCpu, 2)}${how})`,
      target: '<= 4.5 s',
      pass: total <= 4.5,
      indicative,
      figures: {
        cpuPerGiBS: total,
        senderCpuPerGiBS: sCpu,
        recipientCpuPerGiBS: rCpu,
        senderCpuS: mid((r) => r.ours.sender.cpuS),
        recipientCpuS: mid((r) => r.ours.recipient.cpuS),
        relayCpuS: mid((r) => r.ours.relayCpuS),
        bytes,
      },
    },
    {
      id: 'big-vs-socat',
      measure: `${size} via relay, MiB/s / ${tool}, same round`,
      value: `${fmt(ratio, 2)}x (${fmt(mid((r) => r.ours.mibPerS), 0)} / ${fmt(mid((r) => r.reference.mibPerS), 0)} MiB/s)`,
      target: '>= 0.5x',
      pass: ratio >= 0.5,
      indicative,
      figures: { ratio, mibPerS: mid((r) => r.ours.mibPerS), referenceMibPerS: mid((r) => r.reference.mibPerS), reference: tool, rounds: rounds.length },
    },
    {
      id: 'relay-cpu-per-gib',
      measure: 'relay CPU per GiB',
      value: `${fmt(relayCpu, 2)} s (${tool}: ${fmt(mid((r) => r.reference.relay.cpuS) * scale, 2)} s)`,
      target: '<= 0.9 s',
      pass: relayCpu <= 0.9,
      indicative,
      figures: { relayCpuPerGiBS: relayCpu, referenceRelayCpuPerGiBS: mid((r) => r.reference.relay.cpuS) * scale },
    },
  ];
  const notes = [
    `${size} rounds (MiB/s ours / reference = ratio): ${rounds.map((r) => `${fmt(r.ours.mibPerS, 0)}/${fmt(r.reference.mibPerS, 0)} = ${fmt(r.ratio, 2)}`).join('; ')}`,
    `${size} relay peak RSS ${fmt(Math.max(...rounds.map((r) => r.ours.relayPeakRssMiB)), 1)} MiB; reference (${tool}) CPU per GiB sender ${fmt(mid((r) => r.reference.sender.cpuS) * scale, 2)}, recipient ${fmt(mid((r) => r.reference.recipient.cpuS) * scale, 2)}`,
  ];
  return { name: 'big', rows, details: { rounds }, notes };
}
