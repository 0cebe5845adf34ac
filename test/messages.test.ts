import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage, MAX_BATCH_BYTES, MAX_BATCH_FILES, parseMessage, PROTOCOL_VERSION, type Message } from '../src/core/messages.js';
import { TscCrocError } from '../src/core/errors.js';

const proto = (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_PROTOCOL';
const raw = (o: unknown) => Buffer.from(JSON.stringify(o));

test('valid messages round-trip', () => {
  const msgs = [
    { type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 10, names: ['a.txt'] },
    { type: 'dir', path: 'photos/2024', mode: 0o755, mtime: 1700000000000 },
    { type: 'offer', v: PROTOCOL_VERSION, kind: 'stream', totalFiles: 0, totalDirs: 0, totalBytes: 0, names: [] },
    { type: 'stream-end', size: 5, sha256: 'b'.repeat(64) },
    { type: 'file', path: 'a.txt', size: 10, offset: 0, mode: 0o644, mtime: 1700000000000 },
    { type: 'file', path: 'a.txt', size: 10, offset: 10, mode: 0o644, mtime: 1700000000000 },
    { type: 'file-end' },
    { type: 'done' },
    { type: 'keepalive' },
    { type: 'error', code: 'ERR_IO', message: 'disk on fire' },
    { type: 'plan', totalFiles: 2, totalDirs: 1, totalBytes: 0 },
    { type: 'batch', files: [{ path: 'a/b.txt', size: 4096, mode: 0o644, mtime: 1700000000000 }, { path: 'a/empty', size: 0, mode: 0o600, mtime: 0 }] },
    { type: 'batch', files: new Array(MAX_BATCH_FILES).fill({ path: 'x', size: MAX_BATCH_BYTES / MAX_BATCH_FILES, mode: 0, mtime: 0 }) },
  ] as Message[];
  assert.equal(PROTOCOL_VERSION, 3);
  for (const m of msgs) assert.deepEqual(parseMessage(encodeMessage(m), 'sender'), m);
  for (const t of ['accept', 'decline', 'received', 'keepalive'] as const) assert.deepEqual(parseMessage(encodeMessage({ type: t }), 'recipient'), { type: t });
  assert.deepEqual(parseMessage(encodeMessage({ type: 'skip', names: ['a.txt', 'photos'] }), 'recipient'), { type: 'skip', names: ['a.txt', 'photos'] });
  const have = { type: 'have', entries: [{ path: 'a/b.bin', offset: 1048576, digest: 'c'.repeat(64), whole: false }] } as Message;
  assert.deepEqual(parseMessage(encodeMessage(have), 'recipient'), have);
});

test('hostile messages are refused', () => {
  const bad: [unknown, 'sender' | 'recipient'][] = [
    [{ type: 'accept' }, 'sender'],
    [{ type: 'have', entries: [] }, 'recipient'],
    [{ type: 'have', entries: new Array(201).fill({ path: 'a', offset: 0, digest: 'c'.repeat(64), whole: true }) }, 'recipient'],
    [{ type: 'have', entries: [{ path: 'a', offset: -1, digest: 'c'.repeat(64), whole: true }] }, 'recipient'],
    [{ type: 'have', entries: [{ path: 'a', offset: 1, digest: 'C'.repeat(64), whole: true }] }, 'recipient'],
    [{ type: 'have', entries: [{ path: 'a', offset: 1, digest: 'c'.repeat(64), whole: true, x: 1 }] }, 'recipient'],
    [{ type: 'have', entries: [['a', 1]] }, 'recipient'],
    [{ type: 'have', entries: [{ path: 'a', offset: 1, digest: 'c'.repeat(64) }] }, 'recipient'],
    [{ type: 'have', entries: [{ path: 'a', offset: 1, digest: 'c'.repeat(64), whole: 1 }] }, 'recipient'],
    [{ type: 'have', entries: [] }, 'sender'],
    [{ type: 'file', path: 'a', size: 10, offset: 11, mode: 0, mtime: 0 }, 'sender'],
    [{ type: 'file', path: 'a', size: 10, mode: 0, mtime: 0 }, 'sender'],
    [{ type: 'offer', v: 1, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 1, names: [] }, 'recipient'],
    [{ type: 'offer', v: 4, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 1, names: [] }, 'sender'],
    // protocol v2 had no batch: a v2 offer is refused (the peers would not understand each other)
    [{ type: 'offer', v: 2, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 1, names: ['a'] }, 'sender'],
    // batch: a list of 1..1024 entries of exactly path, size, mode, mtime; 1 MiB in all at most
    [{ type: 'batch', files: [] }, 'sender'],
    [{ type: 'batch', files: 'a' }, 'sender'],
    [{ type: 'batch', files: [['a', 1, 0, 0]] }, 'sender'],
    [{ type: 'batch', files: new Array(MAX_BATCH_FILES + 1).fill({ path: 'x', size: 1, mode: 0, mtime: 0 }) }, 'sender'],
    [{ type: 'batch', files: [{ path: 'a', size: MAX_BATCH_BYTES + 1, mode: 0, mtime: 0 }] }, 'sender'],
    [{ type: 'batch', files: [{ path: 'a', size: MAX_BATCH_BYTES, mode: 0, mtime: 0 }, { path: 'b', size: 1, mode: 0, mtime: 0 }] }, 'sender'],
    [{ type: 'batch', files: [{ path: 'a', size: -1, mode: 0, mtime: 0 }] }, 'sender'],
    [{ type: 'batch', files: [{ path: 'a', size: 1, mode: 0o4755, mtime: 0 }] }, 'sender'],
    [{ type: 'batch', files: [{ path: 'a', size: 1, mode: 0, mtime: 0, offset: 0 }] }, 'sender'],
    [{ type: 'batch', files: [{ path: 'a', size: 1, mode: 0 }] }, 'sender'],
    [{ type: 'batch', files: [{ path: '', size: 1, mode: 0, mtime: 0 }] }, 'sender'],
    [{ type: 'batch', files: [{ path: 'a', size: 1, mode: 0, mtime: 0 }], bytes: 1 }, 'sender'],
    [{ type: 'batch', files: [{ path: 'a', size: 1, mode: 0, mtime: 0 }] }, 'recipient'],
    [{ type: 'offer', v: 1, kind: 'files', totalFiles: -1, totalDirs: 0, totalBytes: 1, names: [] }, 'sender'],
    [{ type: 'offer', v: 1, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 2 ** 60, names: [] }, 'sender'],
    [{ type: 'offer', v: 1, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 1, names: new Array(2049).fill('a') }, 'sender'],
    [{ type: 'offer', v: 1, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 1, names: ['x'.repeat(256)] }, 'sender'],
    [{ type: 'file', path: 'a', size: 1.5, offset: 0, mode: 0, mtime: 0 }, 'sender'],
    [{ type: 'dir', path: 'a', mode: 0o755 }, 'sender'],
    [{ type: 'offer', v: 1, totalFiles: 1, totalBytes: 1, names: ['a'] }, 'sender'],
    [{ type: 'offer', v: 1, kind: 'zip', totalFiles: 1, totalDirs: 0, totalBytes: 1, names: ['a'] }, 'sender'],
    [{ type: 'stream-end', size: -1, sha256: 'b'.repeat(64) }, 'sender'],
    [{ type: 'file', path: 'a', size: 1, offset: 0, mode: 0o4755, mtime: 0 }, 'sender'],
    [{ type: 'file', path: '', size: 1, offset: 0, mode: 0, mtime: 0 }, 'sender'],
    [{ type: 'file', path: 'a', size: 1, offset: 0, mode: 0, mtime: 0, extra: true }, 'sender'],
    [{ type: 'file-end', digest: 'XYZ' }, 'sender'],
    // protocol v1's file-end carried the file's digest; v2's has none
    [{ type: 'file-end', digest: 'a'.repeat(64) }, 'sender'],
    [{ type: 'offer', v: 1, kind: 'files', totalFiles: 1, totalDirs: 0, totalBytes: 1, names: ['a'] }, 'sender'],
    [{ type: 'file-end', sha256: 'a'.repeat(64) }, 'sender'],
    [{ type: 'done', x: 1 }, 'sender'],
    [{ type: 'skip', names: [] }, 'recipient'],
    [{ type: 'skip', names: 'a' }, 'recipient'],
    [{ type: 'skip', names: [1] }, 'recipient'],
    [{ type: 'skip', names: ['x'.repeat(256)] }, 'recipient'],
    [{ type: 'skip', names: ['a'], x: 1 }, 'recipient'],
    [{ type: 'plan', totalFiles: 1, totalDirs: 0, totalBytes: 1.5 }, 'sender'],
    [{ type: 'plan', totalFiles: 1, totalDirs: 0, totalBytes: 1, names: [] }, 'sender'],
    [{ type: 'nope' }, 'sender'],
    [[1, 2], 'sender'],
    [null, 'sender'],
  ];
  for (const [m, from] of bad) assert.throws(() => parseMessage(raw(m), from), proto, JSON.stringify(m));
  assert.throws(() => parseMessage(Buffer.from('{not json'), 'sender'), proto);
});
