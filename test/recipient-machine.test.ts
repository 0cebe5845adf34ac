/** The recipient state machine (src/core/recipient-machine.ts) alone: the resume rules of `have` and `file.offset`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TscCrocError } from '../src/core/errors.js';
import { MAX_HAVE_ENTRIES, PROTOCOL_VERSION, type FileMessage, type HaveEntry, type OfferMessage } from '../src/core/messages.js';
import { initialRecipientState, recipientStep, type RecipientState } from '../src/core/recipient-machine.js';

const offer: OfferMessage = { type: 'offer', v: PROTOCOL_VERSION, kind: 'files', totalFiles: 3, totalDirs: 0, totalBytes: 30, names: ['a', 'b', 'c'] };
const file = (path: string, size: number, offset: number): FileMessage => ({ type: 'file', path, size, offset, mode: 0o644, mtime: 0 });
const digest = 'd'.repeat(64);
const protocol = (re: RegExp) => (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_PROTOCOL' && re.test(e.message);

function accepted(have: HaveEntry[]): RecipientState {
  const s1 = recipientStep(initialRecipientState, { kind: 'message', message: offer }).state;
  return recipientStep(s1, { kind: 'decision', accept: true, have }).state;
}

test('accepting sends what is held in batches of MAX_HAVE_ENTRIES, then accept', () => {
  const s1 = recipientStep(initialRecipientState, { kind: 'message', message: offer }).state;
  const have = Array.from({ length: MAX_HAVE_ENTRIES + 1 }, (_, i) => ({ path: `a/${i}`, offset: 1, digest, whole: false }));
  const { effects } = recipientStep(s1, { kind: 'decision', accept: true, have });
  const sent = effects.map((e) => (e.kind === 'send' ? e.message : null));
  assert.equal(sent.length, 3);
  assert.equal(sent[0]?.type, 'have');
  assert.equal(sent[0]?.type === 'have' && sent[0].entries.length, MAX_HAVE_ENTRIES);
  assert.equal(sent[1]?.type === 'have' && sent[1].entries.length, 1);
  assert.deepEqual(sent[2], { type: 'accept' });
  // nothing held: just accept
  assert.deepEqual(recipientStep(s1, { kind: 'decision', accept: true }).effects, [{ kind: 'send', message: { type: 'accept' } }]);
});

test('a file starts at 0, or exactly where a held partial ends; a whole held file only at its size', () => {
  // a fresh state each time: the ledger of written paths is updated in place
  const held = () =>
    accepted([
      { path: 'a', offset: 4, digest, whole: false },
      { path: 'b', offset: 10, digest, whole: true },
    ]);
  // from 0 is always allowed (the sender found the prefix changed)
  assert.equal(recipientStep(held(), { kind: 'message', message: file('a', 10, 0) }).state.name, 'in-file');
  const a = recipientStep(held(), { kind: 'message', message: file('a', 10, 4) }).state;
  assert.equal(a.name === 'in-file' && a.received, 4, 'the held bytes count as received');
  assert.throws(() => recipientStep(held(), { kind: 'message', message: file('a', 10, 5) }), protocol(/did not offer to resume/));
  assert.throws(() => recipientStep(held(), { kind: 'message', message: file('c', 10, 4) }), protocol(/did not offer to resume/));
  const b = recipientStep(held(), { kind: 'message', message: file('b', 10, 10) }).state;
  assert.equal(b.name === 'in-file' && b.received, 10);
  // a whole file of 10 bytes is not the first 10 bytes of a larger one
  assert.throws(() => recipientStep(held(), { kind: 'message', message: file('b', 20, 10) }), protocol(/whole file we hold, at another size/));
  // a held file with all its bytes still needs its file-end
  assert.throws(() => recipientStep(b, { kind: 'data', length: 1 }), protocol(/more data than/));
  const end = recipientStep(b, { kind: 'message', message: { type: 'file-end' } });
  assert.deepEqual(end.effects, [{ kind: 'commit-file' }]);
});

test('keepalives are ignored in every state', () => {
  const states: RecipientState[] = [initialRecipientState, accepted([]), recipientStep(accepted([]), { kind: 'message', message: file('a', 10, 0) }).state];
  for (const s of states) {
    const step = recipientStep(s, { kind: 'message', message: { type: 'keepalive' } });
    assert.equal(step.state, s);
    assert.deepEqual(step.effects, []);
  }
});

test('a batch: every count, size and path is checked at the message; its one DATA record must be exactly its size', () => {
  const batch = (files: { path: string; size: number }[]) => ({ kind: 'message' as const, message: { type: 'batch' as const, files: files.map((f) => ({ ...f, mode: 0o644, mtime: 0 })) } });
  // the offer: a, b, c, 30 bytes in all
  const s = recipientStep(accepted([]), batch([{ path: 'a', size: 10 }, { path: 'b', size: 5 }]));
  assert.equal(s.state.name, 'in-batch');
  assert.deepEqual(s.effects, [], 'nothing is written before the data is in');
  assert.throws(() => recipientStep(s.state, { kind: 'data', length: 14 }), protocol(/a batch of 15 bytes carried 14/));
  assert.throws(() => recipientStep(s.state, { kind: 'data', length: 16 }), protocol(/a batch of 15 bytes carried 16/));
  assert.throws(() => recipientStep(s.state, { kind: 'message', message: { type: 'file-end' } }), protocol(/a batch without its data/));
  assert.throws(() => recipientStep(s.state, { kind: 'end' }), protocol(/a batch without its data/));
  const w = recipientStep(s.state, { kind: 'data', length: 15 });
  assert.equal(w.state.name, 'await-entry');
  assert.equal(w.effects[0]?.kind, 'write-batch');
  assert.deepEqual(w.effects[0]?.kind === 'write-batch' && w.effects[0].segments, [['a'], ['b']]);
  // then c alone; done holds the counts exactly
  const c = recipientStep(recipientStep(w.state, batch([{ path: 'c', size: 15 }])).state, { kind: 'data', length: 15 });
  assert.equal(recipientStep(c.state, { kind: 'message', message: { type: 'done' } }).state.name, 'await-end');
  // more files or bytes than offered, a duplicate (within a batch or after), a path not offered, an unsafe one
  assert.throws(() => recipientStep(accepted([]), batch([{ path: 'a', size: 1 }, { path: 'b', size: 1 }, { path: 'c', size: 1 }, { path: 'c', size: 1 }])), protocol(/more files than offered/));
  assert.throws(() => recipientStep(accepted([]), batch([{ path: 'a', size: 20 }, { path: 'b', size: 11 }])), protocol(/more bytes than offered/));
  assert.throws(() => recipientStep(accepted([]), batch([{ path: 'a', size: 1 }, { path: 'a', size: 1 }])), protocol(/sent twice/));
  assert.throws(() => recipientStep(w.state, batch([{ path: 'a', size: 1 }])), protocol(/sent twice/));
  assert.throws(() => recipientStep(accepted([]), batch([{ path: 'd', size: 1 }])), protocol(/not under an offered name/));
  assert.throws(() => recipientStep(accepted([]), batch([{ path: 'a/x', size: 1 }])), protocol(/comes before its folder/));
  assert.throws(
    () => recipientStep(accepted([]), batch([{ path: '../a', size: 1 }])),
    (e: unknown) => e instanceof TscCrocError && e.code === 'ERR_UNSAFE_PATH',
  );
  // DATA outside a batch or file is still refused
  assert.throws(() => recipientStep(accepted([]), { kind: 'data', length: 0 }), protocol(/data outside a file/));
});
