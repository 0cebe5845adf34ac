/**
 * `npm run bench`: every figure of issue 10's table, for the CLI in BENCH_CLI (default: this
 * checkout's), with the socat relay (and wormhole-william, when it can run) as references in the
 * same run. Each measure is a module of bench/measures/; every child process is measured on its
 * own (CPU, peak RSS) and has a deadline; received data is checked by SHA-256, untimed; everything
 * is on 127.0.0.1 with --no-local on both peers; the temp folder is removed at the end, on failure
 * and on Ctrl-C. Settings: bench/config.ts and bench/README.md.
 *
 * Prints one table (measure | value | target | result) and writes the JSON to BENCH_OUT (default
 * a file in the OS temp folder, named on stdout). Exits 1 when a measure could not run or data
 * arrived wrong; a missed target is a FAIL row, not an error.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MEASURES, readConfig, type BenchConfig, type MeasureName } from './config.js';
import { Bench, type MeasureResult, type Row } from './harness.js';
import { measureBig, type BigShared, type TinyShared } from './measures/big.js';
import { measureConcurrent } from './measures/concurrent.js';
import { measureFolder } from './measures/folder.js';
import { measureHuge } from './measures/huge.js';
import { measureMany } from './measures/many.js';
import { measureRelayRss } from './measures/relay-rss.js';
import { measureSenderRss } from './measures/sender-rss.js';
import { measureTiny } from './measures/tiny.js';
import { measureVersion } from './measures/version.js';
import { formatLoad, machineLoad } from './proc.js';
import { formatTable } from './report.js';
import { hasSocat } from './socat.js';
import { WormholeWilliam } from './ww.js';

/** The commit of the checkout holding the CLI under test, and whether it has changes (best effort). */
function cliCommit(cli: string): string | null {
  try {
    const dir = dirname(cli);
    const head = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+changes` : head;
  } catch {
    return null;
  }
}

function verdict(r: Row): string {
  if (r.pass === null) return '-';
  return `${r.pass ? 'pass' : 'FAIL'}${r.indicative ? '*' : ''}`;
}

async function runMeasures(b: Bench, cfg: BenchConfig): Promise<{ results: MeasureResult[]; errors: { measure: string; error: string }[] }> {
  const results: MeasureResult[] = [];
  const errors: { measure: string; error: string }[] = [];
  const shared: { big?: BigShared; tiny?: TinyShared } = {};
  let ww: WormholeWilliam | string = 'ww: not run';
  const wanted = (m: MeasureName) => cfg.only.has(m) && !(m === 'huge' && cfg.hugeBytes === 0);
  try {
    if (wanted('tiny') || wanted('folder')) {
      ww = await WormholeWilliam.start(b);
      b.log(typeof ww === 'string' ? ww : 'wormhole-william: mailbox server and transit relay up in a private network namespace');
    }
    const table: Record<MeasureName, () => Promise<MeasureResult>> = {
      version: () => measureVersion(b),
      tiny: () => measureTiny(b, ww, shared),
      folder: () => measureFolder(b, ww),
      many: () => measureMany(b),
      'relay-rss': () => measureRelayRss(b),
      big: () => measureBig(b, shared),
      huge: () => measureHuge(b, shared),
      concurrent: () => measureConcurrent(b),
      'sender-rss': () => measureSenderRss(b),
    };
    for (const m of MEASURES) {
      if (!wanted(m)) continue;
      if (m === 'many' && typeof ww !== 'string') {
        await ww.close(); // the wormhole servers are not needed past the small measures
        ww = 'ww: closed';
      }
      const t0 = performance.now();
      b.log(`--- ${m}`);
      try {
        const r = await table[m]();
        results.push(r);
        b.log(`${m}: ${r.rows.map((row) => `${row.value} [${verdict(row)}]`).join('; ')} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        errors.push({ measure: m, error });
        b.log(`${m}: ERROR ${error}`);
        await b.group.killAll();
        results.push({ name: m, rows: [{ id: m, measure: m, value: `ERROR: ${error.split('\n')[0]!.slice(0, 120)}`, target: '', pass: false, figures: { error } }], details: { error } });
      }
    }
  } finally {
    if (typeof ww !== 'string') await ww.close();
  }
  return { results, errors };
}

async function main(): Promise<number> {
  const cfg = readConfig(process.env);
  const started = new Date();
  const t0 = performance.now();
  const tmp = await mkdtemp(join(cfg.tmpBase, 'tsc-croc-bench-'));
  await mkdir(join(tmp, 'stats'));
  await mkdir(join(tmp, 'config'));
  const b = new Bench(cfg, tmp);
  let cleaned: Promise<void> | null = null;
  const cleanup = () => (cleaned ??= b.group.killAll().finally(() => rm(tmp, { recursive: true, force: true })));
  const onSignal = (sig: NodeJS.Signals) => {
    b.log(`${sig}: stopping the children and removing ${tmp}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const cpu = cpus();
  const commit = cliCommit(cfg.cli);
  const loadStart = machineLoad();
  const header = [
    `tsc-croc bench: ${cfg.cli}${commit ? ` (${commit})` : ''}`,
    `node ${process.version}, ${cpu.length} CPU(s) ${cpu[0]?.model ?? ''}, data in ${cfg.tmpBase}${cfg.quick ? ', QUICK (smaller sizes: verdicts marked * are indicative)' : ''}`,
    `reference relay: ${hasSocat() ? 'socat' : 'node raw relay (bench/raw-peers.ts): socat, GNU time or timeout missing, or BENCH_SOCAT=0'}`,
    `load at start: ${formatLoad(loadStart)}`,
  ];
  process.stdout.write(`${header.join('\n')}\n\n`);
  let outcome: Awaited<ReturnType<typeof runMeasures>>;
  try {
    outcome = await runMeasures(b, cfg);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const loadEnd = machineLoad();
  const rows = outcome.results.flatMap((r) => r.rows);
  const durationS = (performance.now() - t0) / 1000;
  const out: string[] = [];
  out.push(formatTable(['measure', 'value', 'target', 'result'], rows.map((r) => [r.measure, r.value, r.target, verdict(r)]), 'left'));
  out.push('');
  const notes = outcome.results.flatMap((r) => r.notes ?? []);
  if (rows.some((r) => r.indicative)) notes.push('* the sizes (or counts) differ from the target\'s: the verdict is indicative only');
  out.push(...notes.map((n) => `- ${n}`));
  out.push(`load at end: ${formatLoad(loadEnd)}`);
  out.push(`took ${durationS.toFixed(0)} s`);
  const json = {
    startedAt: started.toISOString(),
    durationS,
    cli: cfg.cli,
    cliCommit: commit,
    node: process.version,
    cpus: cpu.length,
    cpuModel: cpu[0]?.model,
    platform: process.platform,
    quick: cfg.quick,
    config: { ...cfg, only: [...cfg.only] },
    referenceRelay: hasSocat() ? 'socat' : 'node-raw',
    load: { start: loadStart, end: loadEnd },
    rows,
    errors: outcome.errors,
    details: Object.fromEntries(outcome.results.map((r) => [r.name, r.details])),
  };
  const outFile = cfg.out ?? join(tmpdir(), `tsc-croc-bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(outFile, `${JSON.stringify(json, null, 2)}\n`);
  out.push(`JSON: ${outFile}`);
  process.stdout.write(`${out.join('\n')}\n`);
  return outcome.errors.length > 0 ? 1 : 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  process.stderr.write(`bench: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
