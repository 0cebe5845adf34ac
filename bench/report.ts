/** Turning benchmark results into the tables printed on stdout. */
import type { ProcessCost } from './child.js';

export type Role = 'relay' | 'sender' | 'recipient';
export const ROLES: readonly Role[] = ['relay', 'sender', 'recipient'];

export interface RunResult {
  /** e.g. "tsc-croc 1 GiB". */
  label: string;
  path: 'tsc-croc' | 'raw';
  bytes: number;
  /** From the recipient's spawn to the exit of both the sender and the recipient. */
  wallS: number;
  /** From the recipient's spawn to the start of the data: process start, relay, SPAKE2 (scrypt), stapling, offer. */
  setupS: number;
  /** Recipient side: from the start of the data (first byte / "transferring") to the last byte handed to the file. */
  dataS: number;
  /** Recipient side: from the last byte to the file being synced and committed (fdatasync, hash check, rename). */
  commitS: number;
  dataMBps: number;
  wallMBps: number;
  sha256: string;
  verified: boolean;
  processes: Record<Role, ProcessCost>;
}

export function formatSize(n: number): string {
  if (n >= 2 ** 30 && n % 2 ** 30 === 0) return `${n / 2 ** 30} GiB`;
  if (n >= 2 ** 20 && n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${n} B`;
}

/** A plain-text table: first column left-aligned, the others right-aligned (or all left-aligned). */
export function formatTable(header: string[], rows: string[][], align: 'numbers' | 'left' = 'numbers'): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || align === 'left' ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const f = (x: number, digits: number) => x.toFixed(digits);

export function renderReport(o: { large: RunResult; raw: RunResult; small: RunResult; ratioData: number; ratioWall: number; env: string }): string {
  const runs = [o.large, o.raw, o.small];
  const out: string[] = [];
  out.push(o.env, '');
  out.push(
    'Throughput (MB = 10^6 bytes). wall: recipient start to both peers\' exit. setup: recipient start to first data.',
    'data: recipient side, start of the data to the last byte handed to the file. commit: then to the file synced and in place.',
  );
  out.push(
    formatTable(
      ['run', 'bytes', 'wall s', 'wall MB/s', 'setup s', 'data s', 'data MB/s', 'commit s', 'SHA-256'],
      runs.map((r) => [
        r.label,
        String(r.bytes),
        f(r.wallS, 2),
        f(r.wallMBps, 1),
        f(r.setupS, 2),
        f(r.dataS, 2),
        f(r.dataMBps, 1),
        f(r.commitS, 2),
        r.verified ? 'ok' : 'MISMATCH',
      ]),
    ),
  );
  out.push('');
  out.push(`tsc-croc / raw throughput: data phase ${f(o.ratioData, 3)} (${f(o.ratioData * 100, 1)} %), wall ${f(o.ratioWall, 3)} (${f(o.ratioWall * 100, 1)} %)`);
  out.push('');
  out.push('Per process, from its own process.resourceUsage() over its whole life (startup included): CPU = user + system,');
  out.push('peak RSS = maxRSS, minor faults = pages of fresh memory touched.');
  const rows: string[][] = [];
  for (const r of runs)
    for (const role of ROLES) {
      const p = r.processes[role];
      rows.push([`${r.label} ${role}`, f(p.cpuS, 2), f(p.userCpuS, 2), f(p.systemCpuS, 2), f(p.peakRssMiB, 1), String(p.minorPageFaults)]);
    }
  out.push(formatTable(['process', 'CPU s', 'user s', 'sys s', 'peak RSS MiB', 'minor faults'], rows));
  out.push('');
  out.push(`Peak RSS of tsc-croc against file size (MiB): does memory grow with the file?`);
  out.push(
    formatTable(
      ['process', formatSize(o.small.bytes), formatSize(o.large.bytes), 'difference'],
      ROLES.map((role) => {
        const a = o.small.processes[role].peakRssMiB;
        const b = o.large.processes[role].peakRssMiB;
        return [role, f(a, 1), f(b, 1), `${b - a >= 0 ? '+' : ''}${f(b - a, 1)}`];
      }),
    ),
  );
  return out.join('\n');
}
