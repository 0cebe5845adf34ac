/** What Linux tells about a live process (/proc), and the machine's load. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system) a live process has used so far; undefined when it is gone or not on Linux. */
export function procCpuS(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime: fields 14 and 15 of stat
    return Number.isFinite(ticks) ? ticks / ticksPerSecond() : undefined;
  } catch {
    return undefined;
  }
}

/** Resident set now (VmRSS) and its peak so far (VmHWM), MiB; undefined when the process is gone. */
export function procMemMiB(pid: number): { rssMiB: number; hwmMiB: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    if (rss === null || hwm === null) return undefined;
    return { rssMiB: Number(rss[1]) / 1024, hwmMiB: Number(hwm[1]) / 1024 };
  } catch {
    return undefined;
  }
}

/** Whether something listens on 127.0.0.1:port (from /proc/net/tcp, without connecting to it). */
export function isListening(port: number): boolean {
  const needle = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    return readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .some((l) => {
        const f = l.trim().split(/\s+/);
        return f[1] === needle && f[3] === '0A';
      });
  } catch {
    return false;
  }
}

export interface Load {
  at: string;
  loadavg: [number, number, number];
}

export function machineLoad(): Load {
  const [a, b, c] = loadavg();
  return { at: new Date().toISOString(), loadavg: [a ?? 0, b ?? 0, c ?? 0] };
}

export const formatLoad = (l: Load) => `${l.loadavg.map((x) => x.toFixed(2)).join(', ')} (1, 5, 15 min) at ${l.at}`;
