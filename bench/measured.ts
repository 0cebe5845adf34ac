/**
 * Runs one benchmark process and records what it cost.
 *
 *   node dist/bench/measured.js <stats-file> <tsc-croc args...>      the CLI (runCli), e.g. `send --relay URL FILE`
 *   node dist/bench/measured.js <stats-file> --raw <relay|send|receive> <args...>   a plain-socket peer (bench/raw-peers.ts)
 *
 * On exit, whatever the path (normal end, process.exit, an uncaught error, a signal the program
 * handles), it writes `{ exitCode, usage: process.resourceUsage() }` as JSON to <stats-file>:
 * usage.maxRSS is in KiB, usage.userCPUTime and usage.systemCPUTime in microseconds, covering the
 * whole process (module loading and teardown included). A SIGKILL leaves no stats file.
 * The CLI is imported only for CLI runs, so the raw peers do not pay for loading it.
 */
import { writeFileSync } from 'node:fs';
import { ownPeakRss } from './own-peak-rss.cjs';

export interface StatsRecord {
  exitCode: number;
  usage: NodeJS.ResourceUsage;
}

async function main(argv: string[]): Promise<number> {
  const [statsFile, ...rest] = argv;
  if (statsFile === undefined || rest.length === 0) {
    process.stderr.write('usage: measured.js <stats-file> <tsc-croc args...> | --raw <relay|send|receive> <args...>\n');
    return 2;
  }
  process.on('exit', (code) => {
    const record: StatsRecord = { exitCode: code, usage: ownPeakRss(process.resourceUsage()) }; // maxRSS: VmHWM (rusage-hook.ts)
    writeFileSync(statsFile, JSON.stringify(record));
  });
  if (rest[0] === '--raw') {
    const { runRawPeer } = await import('./raw-peers.js');
    return runRawPeer(rest.slice(1), { stdout: process.stdout, stderr: process.stderr });
  }
  const { runCli } = await import('../src/cli/program.js');
  return runCli(['node', 'tsc-croc', ...rest], { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
}

process.exitCode = await main(process.argv.slice(2));
