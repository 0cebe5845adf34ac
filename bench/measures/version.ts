/** `tsc-croc --version`: the wall time of a bare start of the CLI, against `node -e 0`. */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Bench, MeasureResult } from '../harness.js';
import { fmt, median } from '../harness.js';

/** Spawn, wait for the exit (bounded), return the wall time in s and stdout. */
function timed(b: Bench, args: string[]): Promise<{ wallS: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'], env: b.childEnv() });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), b.cfg.timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const wallS = (performance.now() - t0) / 1000;
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`node ${args.join(' ')} exited with ${String(code ?? signal)}`));
      else resolve({ wallS, out });
    });
  });
}

export async function measureVersion(b: Bench): Promise<MeasureResult> {
  const walls: number[] = [];
  const bare: number[] = [];
  const cpu: number[] = [];
  let version = '';
  for (let i = 0; i < b.cfg.runs; i++) {
    bare.push((await timed(b, ['-e', '0'])).wallS);
    const v = await timed(b, [b.cfg.cli, '--version']);
    walls.push(v.wallS);
    version = v.out.trim();
    // CPU from a second, measured start (the preloaded hook costs a little wall time, so not the same run)
    const m = b.spawnCli('version', ['--version']);
    await m.succeeded();
    cpu.push((await m.cost()).cpuS);
  }
  const wall = median(walls);
  return {
    name: 'version',
    rows: [
      {
        id: 'version-wall',
        measure: '`tsc-croc --version`, wall',
        value: `${fmt(wall, 3)} s (CPU ${fmt(median(cpu), 3)} s; node -e 0: ${fmt(median(bare), 3)} s)`,
        target: '<= 0.12 s wall',
        pass: wall <= 0.12,
        figures: { wallS: wall, cpuS: median(cpu), nodeBareWallS: median(bare), runs: walls.length },
      },
    ],
    details: { version, wallS: walls, cpuS: cpu, nodeBareWallS: bare },
  };
}
