import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRelativePath, displayName } from '../src/core/path.js';
import { TscCrocError } from '../src/core/errors.js';

const unsafe = (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_UNSAFE_PATH';

test('ordinary relative names are accepted', () => {
  assert.deepEqual(checkRelativePath('a.txt'), ['a.txt']);
  assert.deepEqual(checkRelativePath('dir/sub dir/ünïcødé 文件.bin'), ['dir', 'sub dir', 'ünïcødé 文件.bin']);
  assert.deepEqual(checkRelativePath('.hidden/..x/x..'), ['.hidden', '..x', 'x..']);
});

test('hostile names are refused', () => {
  const bad = [
    '', '/etc/passwd', '../x', 'a/../../x', 'a/./b', '..', '.', 'a//b', 'a/', 'C:\\x', 'c:x', 'a\\..\\b',
    'nul\0byte', 'esc\u001b[31mred', 'bell\u0007', 'del\u007f', 'c1\u009b', 'bidi\u202egnp.exe', 'zw\u200bsp',
    'lone\ud800surrogate', 'x'.repeat(256), `${'a/'.repeat(2100)}b`,
  ];
  for (const p of bad) assert.throws(() => checkRelativePath(p), unsafe, JSON.stringify(p));
});

test('error text never carries a raw escape character', () => {
  try {
    checkRelativePath('\u001b]0;pwned\u0007');
    assert.fail('should throw');
  } catch (e) {
    assert.ok(unsafe(e));
    assert.ok(!/[\u0000-\u001f]/.test((e as Error).message));
  }
});

test('displayName replaces control characters', () => {
  assert.equal(displayName('a\u001b[2Jb'), 'a\ufffd[2Jb');
});
