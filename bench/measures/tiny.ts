/** A 1 KiB file end to end (relay already up, both CLIs started fresh), and each side's CPU; wormhole-william alongside. */
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
  try {
    for (let i = 0; i < b.cfg.runs; i++) {
      b.log(`1 KiB: run ${i + 1}/${b.cfg.runs}`);
      const out = await b.dir('tiny-out');
      ours.push(await b.transfer(`tiny ${i + 1}`, relay, [file], out));
      if ((await sha256File(join(out, basename(file)))) !== expected) throw new Error('1 KiB: the received file differs');
      await b.remove(out);
      ww = await referenceRun(b, ww, 'file', file, async (wout) => (await sha256File(join(wout, basename(file)))) === expected, theirs);
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
  return { name: 'tiny', rows, details: { ours, wormholeWilliam: typeof ww === 'string' ? ww : theirs } };
}
