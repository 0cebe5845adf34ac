/**
 * Side by side, the results of several `npm run bench` runs (their JSON files), as a Markdown
 * table: one row per measure (matched by its id), one column per run, value and verdict.
 *
 *   node dist/bench/compare.js before.json after.json [more.json ...]
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { isMain } from './is-main.js';

interface RunFile {
  cli: string;
  cliCommit: string | null;
  quick: boolean;
  startedAt: string;
  durationS: number;
  load: { start: { loadavg: number[] }; end: { loadavg: number[] } };
  rows: { id: string; measure: string; value: string; target: string; pass: boolean | null; indicative?: boolean }[];
}

const verdict = (pass: boolean | null, indicative?: boolean) => (pass === null ? '' : ` ${pass ? 'pass' : '**FAIL**'}${indicative ? '*' : ''}`);
const cell = (s: string) => s.replace(/\|/g, '\\|');

export function compare(files: { name: string; run: RunFile }[]): string {
  const ids: string[] = [];
  const label = new Map<string, { measure: string; target: string }>();
  for (const { run } of files)
    for (const r of run.rows) {
      if (!ids.includes(r.id)) ids.push(r.id);
      if (!label.has(r.id)) label.set(r.id, { measure: r.measure, target: r.target });
    }
  const head = files.map(({ name, run }) => `${name} (${run.cliCommit ?? '?'}${run.quick ? ', quick' : ''}; load ${run.load.start.loadavg[0]!.toFixed(1)} → ${run.load.end.loadavg[0]!.toFixed(1)})`);
  const out = [`| measure | target | ${head.map(cell).join(' | ')} |`, `|---|---|${files.map(() => '---|').join('')}`];
  for (const id of ids) {
    const l = label.get(id)!;
    const cells = files.map(({ run }) => {
      const r = run.rows.find((x) => x.id === id);
      return r ? `${r.value}${verdict(r.pass, r.indicative)}` : '-';
    });
    out.push(`| ${cell(l.measure)} | ${cell(l.target)} | ${cells.map(cell).join(' | ')} |`);
  }
  out.push('', ...files.map(({ name, run }) => `- ${name}: ${run.cli}, started ${run.startedAt}, took ${run.durationS.toFixed(0)} s`));
  return out.join('\n');
}

if (isMain(import.meta.url)) {
  const paths = process.argv.slice(2);
  if (paths.length === 0) {
    process.stderr.write('usage: compare.js RESULT.json [RESULT.json ...]\n');
    process.exitCode = 2;
  } else {
    const files = paths.map((p) => ({ name: basename(p, '.json'), run: JSON.parse(readFileSync(p, 'utf8')) as RunFile }));
    process.stdout.write(`${compare(files)}\n`);
  }
}
