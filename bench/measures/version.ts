/**
 * `tsc-croc --version`: the wall time of a bare start of the CLI, against `node -e 0`. When the
 * environment has NODE_EXTRA_CA_CERTS (node reads and parses that certificate file at every start,
 * before any JavaScript runs: ~50-90 ms on the 2-core VM), the same pair is also timed without it:
 * the bare-node floor, a second row without a verdict. The single binary (dist/tsc-croc next to the
 * CLI, `npm run build:binary`), when there, is timed alongside.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Bench, MeasureResult, Row } from '../harness.js';
import { fmt, median } from '../harness.js';

/** Spawn, wait for the exit (bounded), return the wall time in s and stdout. */
function timed(b: Bench, file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ wallS: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'ignore'], env });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), b.cfg.timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const wallS = (performance.now() - t0) / 1000;
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${file} ${args.join(' ')} exited with ${String(code ?? signal)}`));
      else resolve({ wallS, out });
    });
  });
}

const CA = 'NODE_EXTRA_CA_CERTS';

function binaryNextTo(cli: string): string | null {
  const bin = join(dirname(cli), 'tsc-croc');
  try {
    accessSync(bin, constants.X_OK);
    return bin;
  } catch {
    return null;
  }
}

export async function measureVersion(b: Bench): Promise<MeasureResult> {
  const asIs = b.childEnv();
  const bareEnv = process.env[CA] ? b.childEnv({}, [CA]) : null;
  const binary = binaryNextTo(b.cfg.cli);
  const walls: number[] = [];
  const bare: number[] = [];
  const cpu: number[] = [];
  const floorWalls: number[] = [];
  const floorBare: number[] = [];
  const binWalls: number[] = [];
  let version = '';
  for (let i = 0; i < b.cfg.runs; i++) {
    bare.push((await timed(b, process.execPath, ['-e', '0'], asIs)).wallS);
    const v = await timed(b, process.execPath, [b.cfg.cli, '--version'], asIs);
    walls.push(v.wallS);
    version = v.out.trim();
    if (bareEnv) {
      floorBare.push((await timed(b, process.execPath, ['-e', '0'], bareEnv)).wallS);
      floorWalls.push((await timed(b, process.execPath, [b.cfg.cli, '--version'], bareEnv)).wallS);
    }
    if (binary) binWalls.push((await timed(b, binary, ['--version'], asIs)).wallS);
    // CPU from a second, measured start (the preloaded hook costs a little wall time, so not the same run)
    const m = b.spawnCli('version', ['--version']);
    await m.succeeded();
    cpu.push((await m.cost()).cpuS);
  }
  const wall = median(walls);
  const rows: Row[] = [
    {
      id: 'version-wall',
      measure: '`tsc-croc --version`, wall',
      value: `${fmt(wall, 3)} s (CPU ${fmt(median(cpu), 3)} s; node -e 0: ${fmt(median(bare), 3)} s)`,
      target: '<= 0.12 s wall',
      pass: wall <= 0.12,
      figures: { wallS: wall, cpuS: median(cpu), nodeBareWallS: median(bare), runs: walls.length, ...(binary ? { binaryWallS: median(binWalls) } : {}) },
    },
  ];
  if (bareEnv)
    rows.push({
      id: 'version-wall-floor',
      measure: `\`tsc-croc --version\`, wall, without ${CA}`,
      value: `${fmt(median(floorWalls), 3)} s (node -e 0: ${fmt(median(floorBare), 3)} s)`,
      target: '(the bare-node floor)',
      pass: null,
      figures: { wallS: median(floorWalls), nodeBareWallS: median(floorBare) },
    });
  if (binary)
    rows.push({
      id: 'version-wall-binary',
      measure: '`tsc-croc --version`, wall, the single binary',
      value: `${fmt(median(binWalls), 3)} s`,
      target: '<= 0.12 s wall',
      pass: median(binWalls) <= 0.12,
      figures: { wallS: median(binWalls) },
    });
  return {
    name: 'version',
    rows,
    details: { version, wallS: walls, cpuS: cpu, nodeBareWallS: bare, floorWallS: floorWalls, floorNodeBareWallS: floorBare, binaryWallS: binWalls },
    notes: process.env[CA] ? [`${CA} is set: node parses that certificate file at every start; the "without" rows show the bare-node floor`] : [],
  };
}
