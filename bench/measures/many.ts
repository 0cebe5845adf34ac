/** Many small files (20,000 x 4 KiB): files per second end to end, start-up included. */
import { basename, join } from 'node:path';
import { manifestHash, writeSmallFiles } from '../files.js';
import type { Bench, MeasureResult } from '../harness.js';
import { fmt } from '../harness.js';

export async function measureMany(b: Bench): Promise<MeasureResult> {
  const { manyFiles: n, smallFileBytes: size } = b.cfg;
  const src = join(await b.dir('many-src'), `many-${n}`);
  b.log(`${n} x ${size / 1024} KiB: writing the files`);
  await writeSmallFiles(src, n, size);
  const expected = await manifestHash(src);
  const relay = await b.startRelay('many');
  const out = await b.dir('many-out');
  try {
    b.log(`${n} x ${size / 1024} KiB: sending`);
    const run = await b.transfer('many', relay, [src], out);
    const got = await manifestHash(join(out, basename(src)));
    if (got.sha256 !== expected.sha256) throw new Error(`many files: the received folder differs (${got.files} of ${n} files)`);
    const rate = n / run.wallS;
    return {
      name: 'many',
      rows: [
        {
          id: 'many-files',
          measure: `${n.toLocaleString('en')} x ${size / 1024} KiB, files/s`,
          value: `${fmt(rate, 0)} files/s (${fmt(run.wallS, 2)} s)`,
          target: '>= 5,000 files/s',
          pass: rate >= 5000,
          indicative: n !== 20_000,
          figures: { filesPerS: rate, wallS: run.wallS, files: n, senderCpuS: run.sender.cpuS, recipientCpuS: run.recipient.cpuS, senderPeakRssMiB: run.sender.peakRssMiB, recipientPeakRssMiB: run.recipient.peakRssMiB },
        },
      ],
      details: { run },
    };
  } finally {
    await relay.stop();
    await b.remove(out);
    await b.remove(src);
  }
}
