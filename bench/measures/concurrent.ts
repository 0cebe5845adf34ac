/**
 * N (16) transfers of 256 MiB at once through one relay, against one alone: aggregate MiB/s
 * (all bytes over the time from the first start to the last exit) over the single transfer's MiB/s.
 */
import { basename, join } from 'node:path';
import { formatSize } from '../report.js';
import { sha256File, writeRandomFile } from '../files.js';
import type { Bench, MeasureResult, PairRun } from '../harness.js';
import { GiB, MiB, fmt } from '../harness.js';

export async function measureConcurrent(b: Bench): Promise<MeasureResult> {
  const { concurrency: k, concurrentBytes: bytes } = b.cfg;
  const size = formatSize(bytes);
  const src = await b.dir('conc-src');
  const file = join(src, `conc-${bytes}.bin`);
  await writeRandomFile(file, bytes);
  const expected = await sha256File(file);
  const relay = await b.startRelay('concurrent');
  const outs: string[] = [];
  try {
    const check = async (out: string) => {
      if ((await sha256File(join(out, basename(file)))) !== expected) throw new Error(`concurrent ${size}: a received file differs`);
      await b.remove(out);
    };
    b.log(`${size}: one transfer alone`);
    const aloneOut = await b.dir('conc-alone');
    outs.push(aloneOut);
    const aloneCpu0 = relay.cpuS();
    const alone = await b.transfer('alone', relay, [file], aloneOut);
    const aloneRelayCpuS = relay.cpuS() - aloneCpu0;
    await check(aloneOut);
    const aloneRate = bytes / MiB / alone.wallS;
    // CPU per GiB (peers whole, relay during the transfers): unlike MiB/s, not inflated when other
    // work on the machine leaves a crowd of processes a larger share of the cores than one pair
    const aloneCpuPerGiB = ((alone.sender.cpuS + alone.recipient.cpuS + aloneRelayCpuS) * GiB) / bytes;

    b.log(`${size}: ${k} transfers at once`);
    const dirs = await Promise.all(Array.from({ length: k }, () => b.dir('conc-out')));
    outs.push(...dirs);
    const cpu0 = relay.cpuS();
    const runs: PairRun[] = await Promise.all(dirs.map((d, i) => b.transfer(`concurrent ${i + 1}`, relay, [file], d)));
    const relayCpuS = relay.cpuS() - cpu0;
    const span = (Math.max(...runs.map((r) => r.endedAt)) - Math.min(...runs.map((r) => r.startedAt))) / 1000;
    const aggregate = (k * bytes) / MiB / span;
    for (const d of dirs) await check(d);
    const ratio = aggregate / aloneRate;
    const cpuPerGiB = ((runs.reduce((t, r) => t + r.sender.cpuS + r.recipient.cpuS, 0) + relayCpuS) * GiB) / (k * bytes);
    return {
      name: 'concurrent',
      rows: [
        {
          id: 'concurrent',
          measure: `${k} concurrent ${size} transfers, aggregate / one alone`,
          value: `${fmt(ratio, 2)}x (${fmt(aggregate, 0)} / ${fmt(aloneRate, 0)} MiB/s; CPU/GiB ${fmt(cpuPerGiB, 1)} / ${fmt(aloneCpuPerGiB, 1)} s)`,
          target: '>= 0.8x',
          pass: ratio >= 0.8,
          indicative: k !== 16 || bytes !== 256 * MiB,
          figures: {
            ratio,
            aggregateMibPerS: aggregate,
            aloneMibPerS: aloneRate,
            spanS: span,
            concurrency: k,
            bytes,
            cpuPerGiBS: cpuPerGiB,
            aloneCpuPerGiBS: aloneCpuPerGiB,
            relayCpuS,
            aloneRelayCpuS,
            relayPeakRssMiB: relay.mem().hwmMiB,
          },
        },
      ],
      details: { alone, aloneRelayCpuS, runs, relayCpuS },
    };
  } finally {
    await relay.stop();
    for (const d of outs) await b.remove(d);
    await b.remove(src);
  }
}
