/** What the entry point leaves in the process list (src/cli/hide-secrets.ts), and the prompt's Tab completion. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskedCommandLine } from '../src/cli/hide-secrets.js';
import { completeCodeWord } from '../src/cli/prompt-code.js';

const cmd = (...a: string[]) => maskedCommandLine(['node', '/usr/bin/tsc-croc', ...a])?.slice(2) ?? null;

test('a code or password given as an argument is masked; everything else is left as it was', () => {
  assert.deepEqual(cmd('receive', '7-abandon-ability-able'), ['receive', '***']);
  assert.deepEqual(cmd('receive', '--relay', 'http://r:9009', '--out', 'dl', '-y', '7-abandon-ability-able', '--json'), ['receive', '--relay', 'http://r:9009', '--out', 'dl', '-y', '***', '--json']);
  assert.deepEqual(cmd('receive', '--relay=http://r:9009', '7', 'abandon', 'ability'), ['receive', '--relay=http://r:9009', '***', '***', '***']);
  assert.deepEqual(cmd('receive', '--', '-7-odd'), ['receive', '--', '***']);
  assert.deepEqual(cmd('send', '--code', '7-secret-words', 'a.txt'), ['send', '--code', '***', 'a.txt']);
  assert.deepEqual(cmd('send', '--code=7-secret-words', 'a.txt'), ['send', '--code=***', 'a.txt']);
  assert.deepEqual(cmd('send', '--relay-password', 'hunter2', 'a.txt'), ['send', '--relay-password', '***', 'a.txt']);
  assert.deepEqual(cmd('relay', '--password=hunter2'), ['relay', '--password=***']);
  // `tsc-croc CODE` and `tsc-croc [receive options] CODE` receive: the code is hidden there too
  assert.deepEqual(cmd('5126-ginger-habit-orbit'), ['***']);
  assert.deepEqual(cmd('--relay', 'http://h:9009', '--yes', '5126-ginger-habit-orbit'), ['--relay', 'http://h:9009', '--yes', '***']);
  assert.deepEqual(cmd('--wait', '60', '--out', 'dl', '-y', '5126', 'ginger', 'habit'), ['--wait', '60', '--out', 'dl', '-y', '***', '***', '***']);
  assert.deepEqual(cmd('--relay-password', 'hunter2', '5126-ginger-habit-orbit'), ['--relay-password', '***', '***']);
  assert.deepEqual(cmd('receive', '--wait', '60', '7-abandon-ability-able'), ['receive', '--wait', '60', '***']);
  // a mistyped command is hidden too (more is hidden rather than less)
  assert.deepEqual(cmd('sned', 'a.txt'), ['***', '***']);
  // nothing secret: nothing changed (the title is not touched)
  assert.equal(cmd('send', 'a.txt', '--relay', 'http://r:9009'), null);
  assert.equal(cmd('receive', '--relay', 'http://r:9009'), null);
  assert.equal(cmd('--version'), null);
  assert.equal(cmd(), null);
  assert.equal(cmd('--relay', 'http://r:9009', 'send', 'a.txt'), null);
  assert.equal(cmd('completion', 'bash'), null);
});

test('Tab completes a code word from its first letters (not the channel); several matches are listed', () => {
  assert.deepEqual(completeCodeWord('7'), [[], '7']);
  assert.deepEqual(completeCodeWord('7-aba'), [['abandon-'], 'aba']);
  assert.deepEqual(completeCodeWord('7-abandon-ABI'), [['ability-'], 'ABI']);
  assert.deepEqual(completeCodeWord('7 zoo zo'), [['zone', 'zoo'], 'zo']);
  assert.deepEqual(completeCodeWord('7-xyzzy'), [[], 'xyzzy']);
  assert.deepEqual(completeCodeWord('7-abandon-'), [[], '']);
});
