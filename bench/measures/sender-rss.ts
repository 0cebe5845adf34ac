/** The sender's peak RSS sending a folder of 100,000 files (1 byte each: what grows is per-file state, not data). */
import { basename, join } from 'node:path';
import { manifestHash, writeSmallFiles } from '../files.js';
import type { Bench, MeasureResult } from '../harness.js';
import { fmt } from '../harness.js';

export async function measureSenderRss(b: Bench): Promise<MeasureResult> {
  const n = b.cfg.senderFiles;
  const src = join(await b.dir('srss-src'), `files-${n}`);
  b.log(`${n} x 1 B: writing the files`);
  await writeSmallFiles(src, n, 1);
  const expected = await manifestHash(src);
  const relay = await b.startRelay('sender-rss');
  const out = await b.dir('srss-out');
  try {
    b.log(`${n} x 1 B: sending`);
    const run = await b.transfer('sender-rss', relay, [src], out);
    const got = await manifestHash(join(out, basename(src)));
    if (got.sha256 !== expected.sha256) throw new Error(`sender RSS: the received folder differs (${got.files} of ${n} files)`);
    return {
      name: 'sender-rss',
      rows: [
        {
          id: 'sender-rss',
          measure: `sender peak RSS, ${n.toLocaleString('en')} files of 1 B`,
          value: `${fmt(run.sender.peakRssMiB, 0)} MiB (recipient ${fmt(run.recipient.peakRssMiB, 0)}; ${fmt(n / run.wallS, 0)} files/s)`,
          target: '<= 128 MiB',
          pass: run.sender.peakRssMiB <= 128,
          indicative: n !== 100_000,
          figures: { senderPeakRssMiB: run.sender.peakRssMiB, recipientPeakRssMiB: run.recipient.peakRssMiB, files: n, wallS: run.wallS, senderCpuS: run.sender.cpuS, recipientCpuS: run.recipient.cpuS },
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
