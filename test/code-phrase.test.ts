import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { formatCode, generateSecret, parseCode } from '../src/core/code-phrase.js';
import { TscCrocError } from '../src/core/errors.js';

const isCode = (code: string) => (e: unknown) => e instanceof TscCrocError && e.code === code;

test('generated secrets are three list words, drawn through the injected source', () => {
  const picks = [0, 2047, 1];
  const s = generateSecret(3, () => picks.shift()!);
  assert.equal(s, `${wordlist[0]}-${wordlist[2047]}-${wordlist[1]}`);
  const random = generateSecret();
  assert.equal(random.split('-').length, 3);
  for (const w of random.split('-')) assert.ok(wordlist.includes(w));
});

test('codes round-trip through format and parse', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 99999 }), fc.array(fc.integer({ min: 0, max: 2047 }), { minLength: 2, maxLength: 5 }), (ch, idx) => {
      const code = { channel: String(ch), secret: idx.map((i) => wordlist[i]).join('-') };
      assert.deepEqual(parseCode(formatCode(code)), code);
    }),
    { numRuns: 200 },
  );
});

test('codes are case-insensitive, take spaces or dashes, and 4-letter prefixes', () => {
  const want = { channel: '42', secret: 'abandon-zoo-act' };
  assert.deepEqual(parseCode('42-abandon-zoo-act'), want);
  assert.deepEqual(parseCode('  42 ABANDON  Zoo act '), want);
  assert.deepEqual(parseCode('42-aban-zoo-act'), want);
  assert.deepEqual(parseCode('42 abando zoo act'), want);
  assert.deepEqual(parseCode('42-abandon_zoo-act'), want);
  // a 3-letter word is itself, not a prefix of a longer word
  assert.deepEqual(parseCode('7-act-acti-zoo'), { channel: '7', secret: 'act-action-zoo' });
});

test('custom secrets are kept as typed (lowercased) when they are not list words', () => {
  assert.deepEqual(parseCode('room1-purple-monkey-dishwasher'), { channel: 'room1', secret: 'purple-monkey-dishwasher' });
});

test('bad codes are refused with ERR_BAD_CODE_FORMAT, without echoing the secret', () => {
  for (const bad of ['', '   ', '42', '-abandon-zoo', '42-ab', '4!2-abandon-zoo-act', '42-abandon-zo$o', 'x'.repeat(300)]) {
    assert.throws(() => parseCode(bad), isCode('ERR_BAD_CODE_FORMAT'), JSON.stringify(bad));
  }
  try {
    parseCode('42-secretword-x$');
  } catch (e) {
    assert.ok(!(e as Error).message.includes('secretword'));
  }
});
