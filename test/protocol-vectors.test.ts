/**
 * docs/protocol.md §5: the example records of a v3 transfer (an offer, a `batch` of two small
 * files and its one DATA record, END), sealed with the K_s2r of the worked example (§4.9), byte
 * for byte; opened again, parsed, and run through the recipient machine, they are a valid
 * transfer. The vectors move with the protocol version.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROTOCOL_VERSION, parseMessage } from '../src/core/messages.js';
import { RecordOpener, RecordSealer, RecordType, recordPayload, type RecordTypeValue } from '../src/core/record.js';
import { initialRecipientState, recipientStep } from '../src/core/recipient-machine.js';

const K_s2r = Buffer.from('18a85c29b888a3fcbc4369c987cb18afe52a6078f120873926bae8a72b7544eb', 'hex');
const OFFER = '{"type":"offer","v":3,"kind":"files","totalFiles":2,"totalDirs":0,"totalBytes":8,"names":["a.txt","b.txt"]}';
const BATCH = '{"type":"batch","files":[{"path":"a.txt","size":5,"mode":420,"mtime":1732233600000},{"path":"b.txt","size":3,"mode":420,"mtime":1732233600000}]}';
/** header · seq · ciphertext · tag, as printed in docs/protocol.md §5. */
const RECORDS: [RecordTypeValue, Buffer, string][] = [
  [
    RecordType.MESSAGE,
    Buffer.from(OFFER),
    '00000084 0000000000000000 ' +
      'ea186760edfcff0808e6ae9caf5f3f871f113a516c7c4c03c4c5e4a207cf2ca42cc71d8695d32d7390cf0b5ea641' +
      '8aac929bd3cd290895688658b65664fb80fc722cbb9e00e6bc469c16fb9c96741960aae6a12bc4829fe042daef6c' +
      '089d1b31bfc3f3af56a54705a522555f 40d81d273e08cbf514e81d1af016edbe',
  ],
  [
    RecordType.MESSAGE,
    Buffer.from(BATCH),
    '000000a9 0000000000000001 ' +
      '40c0823b68459049c56cc81002f7a3cc1bcac9b8273b2a25062410e924b558de753579d1148bf250e8ea4da5acff' +
      '726932ce3919db97bf474d7ec38e31eeba5d0f08614257284366cba107c451445f7d6d5d5a2109bfe4dd0adf9b3d' +
      '140647e1aa81dc1cee93ccd1ecc93c40984f2cf6a320f422e8b323d1439b22947c18ac0cdb117971583d62b5dc6f' +
      '20b7e7febfc61b 08bd812eace12424f520f02b63e33233',
  ],
  [RecordType.DATA, Buffer.from('helloabc'), '00000021 0000000000000002 3bf61108713aafba50 a569dbb45fcbfa58ae0340697765f0ac'],
  [RecordType.END, Buffer.alloc(0), '00000019 0000000000000003 ff 791d95c4bc71b5c06a70ca994ae97eff'],
];

test('docs/protocol.md §5: the v3 example records, sealed byte for byte', () => {
  assert.equal(PROTOCOL_VERSION, 3);
  const sealer = new RecordSealer(K_s2r);
  for (const [type, payload, hex] of RECORDS) assert.equal(Buffer.concat(sealer.seal(type, payload)).toString('hex'), hex.replaceAll(' ', ''));
});

test('docs/protocol.md §5: opened, parsed and run through the recipient machine, they are a whole transfer', () => {
  const opener = new RecordOpener(K_s2r);
  const records = opener.push(Buffer.from(RECORDS.map(([, , hex]) => hex.replaceAll(' ', '')).join(''), 'hex'));
  assert.equal(records.length, 4);
  let state = recipientStep(initialRecipientState, { kind: 'message', message: parseMessage(recordPayload(records[0]!), 'sender') }).state;
  state = recipientStep(state, { kind: 'decision', accept: true }).state;
  state = recipientStep(state, { kind: 'message', message: parseMessage(recordPayload(records[1]!), 'sender') }).state;
  assert.equal(state.name, 'in-batch');
  const data = recipientStep(state, { kind: 'data', length: records[2]!.length });
  assert.equal(recordPayload(records[2]!).toString(), 'helloabc');
  assert.deepEqual(data.effects[0]?.kind === 'write-batch' && data.effects[0].files.map((f) => [f.path, f.size]), [['a.txt', 5], ['b.txt', 3]]);
  state = recipientStep(data.state, { kind: 'message', message: { type: 'done' } }).state;
  assert.equal(records[3]!.type, RecordType.END);
  assert.equal(recipientStep(state, { kind: 'end' }).state.name, 'finished');
});
