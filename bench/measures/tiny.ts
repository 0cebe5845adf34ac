/**
 * A 1 KiB file end to end (relay already up, both CLIs started fresh), and each side's CPU;
 * wormhole-william alongside. With NODE_EXTRA_CA_CERTS in the environment (node parses that file
 * at every start), each run is followed by one without it for the peers: the bare-node floor, an
 * extra row without a verdict.
 */
import { basename, join } from 'node:path';
import { sha256File, writeRandomFile } from '../files.js';
import type { Bench, MeasureResult, PairRun, Row } from '../harness.js';
import { fmt, median } from '../harness.js';
import { referenceRun, type WormholeWilliam, type WwRun } from '../ww.js';
import type { TinyShared } from './big.js';

export async function measureTiny(b: Bench, ww: WormholeWilliam | string, shared: { tiny?: TinyShared }): Promise<MeasureResult> {
  const src = await b.dir('tiny-src');
  const file = join(src, 'tiny.bin');
  await writeRandomFile(file, b.cfg.tinyBytes);
  const expected = await sha256File(file);
  const relay = await b.startRelay('tiny');
  const ours: PairRun[] = [];
  const theirs: WwRun[] = [];
  const floor: PairRun[] = [];
  const together: PairRun[] = [];
  const CA = 'NODE_EXTRA_CA_CERTS';
  const withCa = process.env[CA] !== undefined;
  try {
    for (let i = 0; i < b.cfg.runs; i++) {
      b.log(`1 KiB: run ${i + 1}/${b.cfg.runs}`);
      const out = await b.dir('tiny-out');
      ours.push(await b.transfer(`tiny ${i + 1}`, relay, [file], out));
      if ((await sha256File(join(out, basename(file)))) !== expected) throw new Error('1 KiB: the received file differs');
      await b.remove(out);
      ww = await referenceRun(b, ww, 'file', file, async (wout) => (await sha256File(join(wout, basename(file)))) === expected, theirs);
      // the same transfer timed as wormhole-william is: a code agreed beforehand, both started at once
      const tout = await b.dir('tiny-out');
      together.push(await b.transferTogether(`tiny ${i + 1} together`, relay, [file], tout, `${7000 + i}-apple-banana-cherry`));
      if ((await sha256File(join(tout, basename(file)))) !== expected) throw new Error('1 KiB: the received file differs');
      await b.remove(tout);
      if (withCa) {
        const fout = await b.dir('tiny-out');
        floor.push(await b.transfer(`tiny ${i + 1} without ${CA}`, relay, [file], fout, [CA]));
        if ((await sha256File(join(fout, basename(file)))) !== expected) throw new Error('1 KiB: the received file differs');
        await b.remove(fout);
      }
    }
  } finally {
    await relay.stop();
    await b.remove(src);
  }
  const wall = median(ours.map((r) => r.wallS));
  const min = Math.min(...ours.map((r) => r.wallS));
  const max = Math.max(...ours.map((r) => r.wallS));
  const sCpu = median(ours.map((r) => r.sender.cpuS));
  const rCpu = median(ours.map((r) => r.recipient.cpuS));
  shared.tiny = { senderCpuS: sCpu, recipientCpuS: rCpu };
  const rows: Row[] = [
    {
      id: 'tiny-wall',
      measure: `1 KiB end to end, median of ${ours.length}`,
      value: `${fmt(wall, 3)} s (${fmt(min, 2)}-${fmt(max, 2)})`,
      target: '<= 0.35 s',
      pass: wall <= 0.35,
      figures: { wallS: wall, minS: min, maxS: max, codeS: median(ours.map((r) => r.codeS)) },
    },
  ];
  if (typeof ww === 'string') rows.push({ id: 'tiny-vs-ww', measure: '1 KiB end to end / wormhole-william', value: ww, target: '<= 1.7x', pass: null, figures: { ww } });
  else {
    const w = median(theirs.map((r) => r.wallS));
    rows.push({
      id: 'tiny-vs-ww',
      measure: '1 KiB end to end / wormhole-william',
      value: `${fmt(wall / w, 2)}x (ww ${fmt(w, 3)} s)`,
      target: '<= 1.7x',
      pass: wall / w <= 1.7,
      figures: { ratio: wall / w, wwWallS: w, wwSenderCpuS: median(theirs.map((r) => r.sender.cpuS)), wwRecipientCpuS: median(theirs.map((r) => r.recipient.cpuS)) },
    });
  }
  rows.push({
    id: 'tiny-cpu',
    measure: 'CPU per side, 1 KiB (median)',
    value: `sender ${fmt(sCpu, 3)} / recipient ${fmt(rCpu, 3)} s`,
    target: '<= 0.25 s',
    pass: Math.max(sCpu, rCpu) <= 0.25,
    figures: { senderCpuS: sCpu, recipientCpuS: rCpu, senderPeakRssMiB: median(ours.map((r) => r.sender.peakRssMiB)), recipientPeakRssMiB: median(ours.map((r) => r.recipient.peakRssMiB)) },
  });
  if (together.length > 0) {
    const tw = median(together.map((r) => r.wallS));
    const w = typeof ww === 'string' ? NaN : median(theirs.map((r) => r.wallS));
    rows.push({
      id: 'tiny-wall-together',
      measure: `1 KiB, code agreed beforehand, both started at once (as wormhole-william is timed), median of ${together.length}`,
      value: `${fmt(tw, 3)} s (${fmt(Math.min(...together.map((r) => r.wallS)), 2)}-${fmt(Math.max(...together.map((r) => r.wallS)), 2)})${Number.isFinite(w) ? `, ${fmt(tw / w, 2)}x ww` : ''}; CPU sender ${fmt(median(together.map((r) => r.sender.cpuS)), 3)} / recipient ${fmt(median(together.map((r) => r.recipient.cpuS)), 3)} s`,
      target: '(same timing as ww)',
      pass: null,
      figures: { wallS: tw, ratio: tw / w },
    });
  }
  if (floor.length > 0) {
    const fw = median(floor.map((r) => r.wallS));
    const w = typeof ww === 'string' ? NaN : median(theirs.map((r) => r.wallS));
    const fs = median(floor.map((r) => r.sender.cpuS));
    const fr = median(floor.map((r) => r.recipient.cpuS));
    rows.push({
      id: 'tiny-wall-floor',
      measure: `1 KiB end to end, without ${CA}, median of ${floor.length}`,
      value: `${fmt(fw, 3)} s${Number.isFinite(w) ? `, ${fmt(fw / w, 2)}x ww` : ''}; CPU sender ${fmt(fs, 3)} / recipient ${fmt(fr, 3)} s`,
      target: '(the bare-node floor)',
      pass: null,
      figures: { wallS: fw, ratio: fw / w, senderCpuS: fs, recipientCpuS: fr },
    });
  }
  return { name: 'tiny', rows, details: { ours, together, floor, wormholeWilliam: typeof ww === 'string' ? ww : theirs } };
}
