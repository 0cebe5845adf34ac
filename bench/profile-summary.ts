/**
 * Summarize a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time,
 * and the most total time (self + callees, each sample counted once per function on its stack).
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--top N]
 *
 * Time spent in native code (OpenSSL, libuv writes) is charged to the JS function that called
 * into it, so e.g. AES-GCM shows up as Cipheriv `update` and SHA-256 as Hash `update`.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { isMain } from './is-main.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  name: string;
  selfMs: number;
  totalMs: number;
}

export interface ProfileSummary {
  durationMs: number;
  functions: FunctionTime[];
}

function keyOf(cf: CallFrame): string {
  const name = cf.functionName || '(anonymous)';
  if (!cf.url) return name;
  const url = cf.url.replace(/^file:\/\/.*\/(dist|node_modules)\//, '$1/');
  return `${name} ${url}:${cf.lineNumber + 1}`;
}

export function summarizeProfile(profile: CpuProfile): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const acc = new Map<string, FunctionTime>();
  const entry = (name: string) => {
    let e = acc.get(name);
    if (!e) acc.set(name, (e = { name, selfMs: 0, totalMs: 0 }));
    return e;
  };
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // a sample lasts until the next one; the last one until the profile's end
    const next = i + 1 < timeDeltas.length ? timeDeltas[i + 1]! : 0;
    const ms = Math.max(0, next) / 1000;
    let id: number | undefined = samples[i]!;
    const node = byId.get(id);
    if (!node) continue;
    entry(keyOf(node.callFrame)).selfMs += ms;
    const seen = new Set<string>();
    while (id !== undefined) {
      const n = byId.get(id);
      if (!n) break;
      const k = keyOf(n.callFrame);
      if (k !== '(root)' && !seen.has(k)) {
        seen.add(k);
        entry(k).totalMs += ms;
      }
      id = parent.get(id);
    }
  }
  return { durationMs: (profile.endTime - profile.startTime) / 1000, functions: [...acc.values()] };
}

export function renderProfileSummary(title: string, s: ProfileSummary, top = 15): string {
  const pct = (ms: number) => `${((100 * ms) / s.durationMs).toFixed(1).padStart(5)} %`;
  const row = (ms: number, name: string) => `  ${ms.toFixed(0).padStart(7)} ms ${pct(ms)}  ${name}`;
  const bySelf = [...s.functions].sort((a, b) => b.selfMs - a.selfMs).slice(0, top);
  const byTotal = [...s.functions]
    .filter((f) => !f.name.startsWith('('))
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, top);
  return [
    `${title}: ${(s.durationMs / 1000).toFixed(2)} s profiled`,
    ' top self time:',
    ...bySelf.map((f) => row(f.selfMs, f.name)),
    ' top total time (self + callees):',
    ...byTotal.map((f) => row(f.totalMs, f.name)),
  ].join('\n');
}

export function summarizeProfileFile(path: string, top = 15): string {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  return renderProfileSummary(basename(path), summarizeProfile(profile), top);
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  const t = args.indexOf('--top');
  const top = t >= 0 ? Number(args.splice(t, 2)[1]) : 15;
  if (args.length === 0 || !Number.isInteger(top) || top < 1) {
    process.stderr.write('usage: profile-summary.js FILE.cpuprofile... [--top N]\n');
    process.exitCode = 2;
  } else for (const f of args) process.stdout.write(`${summarizeProfileFile(f, top)}\n\n`);
}
