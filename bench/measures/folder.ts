/** A folder of 2000 x 4 KiB files end to end, against wormhole-william in the same run (alternating). */
import { basename, join } from 'node:path';
import { manifestHash, writeSmallFiles } from '../files.js';
import type { Bench, MeasureResult, PairRun, Row } from '../harness.js';
import { fmt, median } from '../harness.js';
import { referenceRun, type WormholeWilliam, type WwRun } from '../ww.js';

export async function measureFolder(b: Bench, ww: WormholeWilliam | string): Promise<MeasureResult> {
  const { folderFiles: n, smallFileBytes: size, folderRuns: runs } = b.cfg;
  const src = join(await b.dir('folder-src'), `folder-${n}`);
  await writeSmallFiles(src, n, size);
  const expected = await manifestHash(src);
  const relay = await b.startRelay('folder');
  const ours: PairRun[] = [];
  const theirs: WwRun[] = [];
  const together: PairRun[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      b.log(`${n} x ${size / 1024} KiB folder: run ${i + 1}/${runs}`);
      const out = await b.dir('folder-out');
      ours.push(await b.transfer(`folder ${i + 1}`, relay, [src], out));
      if ((await manifestHash(join(out, basename(src)))).sha256 !== expected.sha256) throw new Error('folder: the received folder differs');
      await b.remove(out);
      ww = await referenceRun(b, ww, 'dir', src, async (wout) => (await manifestHash(join(wout, basename(src)))).sha256 === expected.sha256, theirs);
      // timed as wormhole-william is: a code agreed beforehand, both started at once
      const tout = await b.dir('folder-out');
      together.push(await b.transferTogether(`folder ${i + 1} together`, relay, [src], tout, `${7100 + i}-apple-banana-cherry`));
      if ((await manifestHash(join(tout, basename(src)))).sha256 !== expected.sha256) throw new Error('folder: the received folder differs');
      await b.remove(tout);
    }
  } finally {
    await relay.stop();
    await b.remove(src);
  }
  const wall = median(ours.map((r) => r.wallS));
  const figures = {
    wallS: wall,
    senderCpuS: median(ours.map((r) => r.sender.cpuS)),
    recipientCpuS: median(ours.map((r) => r.recipient.cpuS)),
    runs: ours.length,
  };
  const id = 'folder-vs-ww';
  const measure = `${n} x ${size / 1024} KiB folder / wormhole-william`;
  const row =
    typeof ww === 'string'
      ? { id, measure, value: `${fmt(wall, 2)} s; ${ww}`, target: '<= 1.7x', pass: null, figures: { ...figures, ww } }
      : (() => {
          const w = median(theirs.map((r) => r.wallS));
          return {
            id,
            measure,
            value: `${fmt(wall / w, 2)}x (${fmt(wall, 2)} s, ww ${fmt(w, 2)} s)`,
            target: '<= 1.7x',
            pass: wall / w <= 1.7,
            figures: { ...figures, ratio: wall / w, wwWallS: w, wwSenderCpuS: median(theirs.map((r) => r.sender.cpuS)), wwRecipientCpuS: median(theirs.map((r) => r.recipient.cpuS)) },
          };
        })();
  const rows: Row[] = [row];
  if (together.length > 0 && typeof ww !== 'string') {
    const tw = median(together.map((r) => r.wallS));
    const w = median(theirs.map((r) => r.wallS));
    rows.push({
      id: 'folder-together',
      measure: `${n} x ${size / 1024} KiB folder, code agreed beforehand, both started at once (as wormhole-william is timed)`,
      value: `${fmt(tw / w, 2)}x (${fmt(tw, 2)} s, ww ${fmt(w, 2)} s)`,
      target: '(same timing as ww)',
      pass: null,
      figures: { ...figures, wallS: tw, ratio: tw / w, wwWallS: w },
    });
  }
  return { name: 'folder', rows, details: { ours, together, wormholeWilliam: typeof ww === 'string' ? ww : theirs } };
}
