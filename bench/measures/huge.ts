/** The peers' peak RSS at the big size (from the big measure) and at the huge one (4 GiB): at most 64 MiB, and flat. */
import { basename, dirname, join } from 'node:path';
import { formatSize } from '../report.js';
import { sha256File } from '../files.js';
import type { Bench, MeasureResult } from '../harness.js';
import { GiB, fmt } from '../harness.js';
import type { BigShared } from './big.js';
import { randomSource } from './source.js';

/** How much more the peak may be at 4x the size and still count as flat, MiB. */
const FLAT_MIB = 8;

export async function measureHuge(b: Bench, shared: { big?: BigShared }): Promise<MeasureResult> {
  const bytes = b.cfg.hugeBytes;
  const size = formatSize(bytes);
  const { file, expected } = await randomSource(b, 'huge', bytes);
  const relay = await b.startRelay('huge');
  const out = await b.dir('huge-out');
  try {
    b.log(`${size}: sending`);
    const run = await b.transfer('huge', relay, [file], out);
    if ((await sha256File(join(out, basename(file)))) !== expected) throw new Error(`${size}: the received file differs`);
    const peak = Math.max(run.sender.peakRssMiB, run.recipient.peakRssMiB);
    const big = shared.big;
    const bigPeak = big ? Math.max(big.peerPeakRssMiB.sender, big.peerPeakRssMiB.recipient) : NaN;
    const flat = big ? peak - bigPeak <= FLAT_MIB : null;
    const pair = (s: number, r: number) => `${fmt(s, 0)}/${fmt(r, 0)}`;
    return {
      name: 'huge',
      rows: [
        {
          id: 'peer-rss',
          measure: `peer peak RSS (send/recv), ${big ? `${formatSize(big.bytes)} and ` : ''}${size}`,
          value: `${big ? `${pair(big.peerPeakRssMiB.sender, big.peerPeakRssMiB.recipient)} and ` : ''}${pair(run.sender.peakRssMiB, run.recipient.peakRssMiB)} MiB`,
          target: `<= 64 MiB, flat (+${FLAT_MIB} at most)`,
          pass: Math.max(peak, Number.isNaN(bigPeak) ? 0 : bigPeak) <= 64 && flat !== false,
          indicative: bytes !== 4 * GiB || big?.bytes !== GiB,
          figures: {
            bigBytes: big?.bytes ?? null,
            bigSenderPeakRssMiB: big?.peerPeakRssMiB.sender ?? null,
            bigRecipientPeakRssMiB: big?.peerPeakRssMiB.recipient ?? null,
            hugeBytes: bytes,
            hugeSenderPeakRssMiB: run.sender.peakRssMiB,
            hugeRecipientPeakRssMiB: run.recipient.peakRssMiB,
            flat,
          },
        },
      ],
      details: { run, relayPeakRssMiB: relay.mem().hwmMiB },
      notes: [`${size}: ${fmt(bytes / 2 ** 20 / run.wallS, 0)} MiB/s, CPU sender ${fmt(run.sender.cpuS, 2)} s, recipient ${fmt(run.recipient.cpuS, 2)} s`],
    };
  } finally {
    await relay.stop();
    await b.remove(out);
    await b.remove(dirname(file));
  }
}
