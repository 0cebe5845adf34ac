/** A folder of 2000 x 4 KiB files end to end, against wormhole-william in the same run (alternating). */
import { basename, join } from 'node:path';
import { manifestHash, writeSmallFiles } from '../files.js';
import type { Bench, MeasureResult, PairRun } from '../harness.js';
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
  try {
    for (let i = 0; i < runs; i++) {
      b.log(`${n} x ${size / 1024} KiB folder: run ${i + 1}/${runs}`);
      const out = await b.dir('folder-out');
      ours.push(await b.transfer(`folder ${i + 1}`, relay, [src], out));
      if ((await manifestHash(join(out, basename(src)))).sha256 !== expected.sha256) throw new Error('folder: the received folder differs');
      await b.remove(out);
      ww = await referenceRun(b, ww, 'dir', src, async (wout) => (await manifestHash(join(wout, basename(src)))).sha256 === expected.sha256, theirs);
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
  return { name: 'folder', rows: [row], details: { ours, wormholeWilliam: typeof ww === 'string' ? ww : theirs } };
}
