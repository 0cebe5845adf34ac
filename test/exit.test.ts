/** The one table from errors to exit codes (src/cli/exit.ts): every fault of issue 6 has its own code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EXIT, reportError } from '../src/cli/exit.js';
import { ERROR_CODES, TscCrocError, type ErrorCode } from '../src/core/errors.js';

const exitOf = (code: ErrorCode) => {
  const lines: string[] = [];
  const n = reportError(new TscCrocError(code, `something (${code})`), (l) => lines.push(l));
  assert.equal(lines.length, 1, 'one line');
  assert.match(lines[0]!, new RegExp(`^tsc-croc: .* \\[${code}\\]$`));
  return n;
};

test('each fault ends with its own exit code', () => {
  const faults: [ErrorCode, number][] = [
    ['ERR_RELAY_UNREACHABLE', EXIT.NETWORK], // the relay cannot be reached at the start
    ['ERR_RELAY_LOST', EXIT.RELAY_LOST], // killed mid-transfer and not back
    ['ERR_PEER_LOST', EXIT.PEER_LOST], // the other side killed
    ['ERR_DISK_FULL', EXIT.DISK_FULL],
    ['ERR_NOT_WRITABLE', EXIT.NOT_WRITABLE],
    ['ERR_STALLED', EXIT.STALLED],
    ['ERR_SOURCE_CHANGED', EXIT.SOURCE_CHANGED],
  ];
  const seen = new Set<number>();
  for (const [code, want] of faults) {
    const got = exitOf(code);
    assert.equal(got, want, code);
    assert.ok(!seen.has(got), `${code}: exit ${got} is not shared with another fault`);
    seen.add(got);
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), [5, 6, 7, 8, 9, 10, 11]);
});

test('every error code maps to an exit code in 1..11, and unexpected errors to 1', () => {
  for (const code of ERROR_CODES) {
    const n = exitOf(code);
    assert.ok(n >= 1 && n <= 11, `${code} → ${n}`);
  }
  const lines: string[] = [];
  assert.equal(reportError(new Error('boom'), (l) => lines.push(l)), EXIT.ERROR);
  assert.deepEqual(lines, ['tsc-croc: unexpected error: boom']);
});
