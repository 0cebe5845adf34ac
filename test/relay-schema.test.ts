/** The relay's own schema checks (src/relay/schema.ts), keyword by keyword, and through the HTTP routes. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileSerializer, compileValidator, type Schema } from '../src/relay/schema.js';
import { expectError, post, withRelay } from './relay-helpers.js';

const body: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['role'],
  properties: {
    role: { type: 'string', enum: ['sender', 'recipient'] },
    name: { type: 'string', pattern: '^[a-z]+$', minLength: 2, maxLength: 4 },
    wait: { type: 'integer', minimum: 0, maximum: 10 },
    close: { type: 'boolean' },
    note: { type: ['string', 'null'] },
  },
};

describe('schema checks', () => {
  const check = compileValidator(body);
  const fails = (v: unknown, message: RegExp): void => {
    const errors = check(v);
    assert.ok(errors.some((e) => message.test(`${e.instancePath} ${e.message}`)), `${JSON.stringify(v)}: ${JSON.stringify(errors)}`);
  };

  test('a conforming value has no errors', () => {
    assert.deepEqual(check({ role: 'sender' }), []);
    assert.deepEqual(check({ role: 'recipient', name: 'abcd', wait: 10, close: false, note: null }), []);
    assert.deepEqual(check({ role: 'recipient', name: 'ab', wait: 0, note: 'x' }), []);
  });

  test('each keyword refuses what it should', () => {
    fails(null, /must be object/);
    fails([], /must be object/);
    fails('x', /must be object/);
    fails({}, /must have required property 'role'/);
    fails({ role: 'sender', extra: 1 }, /must NOT have additional properties/);
    fails({ role: 'other' }, /\/role must be equal to one of the allowed values/);
    fails({ role: 1 }, /\/role must be string/);
    fails({ role: 'sender', name: 'ABC' }, /\/name must match pattern/);
    fails({ role: 'sender', name: 'a' }, /\/name must NOT have fewer than 2/);
    fails({ role: 'sender', name: 'abcde' }, /\/name must NOT have more than 4/);
    fails({ role: 'sender', wait: 1.5 }, /\/wait must be integer/);
    fails({ role: 'sender', wait: '1' }, /\/wait must be integer/);
    fails({ role: 'sender', wait: -1 }, /\/wait must be >= 0/);
    fails({ role: 'sender', wait: 11 }, /\/wait must be <= 10/);
    fails({ role: 'sender', close: 'true' }, /\/close must be boolean/);
    fails({ role: 'sender', note: 3 }, /\/note must be string,null/);
    // An inherited name is not a property.
    fails(Object.create({ role: 'sender' }), /must have required property 'role'/);
  });

  test('lengths count characters, not UTF-16 units (as JSON Schema does)', () => {
    const names = compileValidator({ type: 'string', maxLength: 2 });
    assert.deepEqual(names('😀😀'), []);
    assert.equal(names('😀😀😀').length, 1);
  });

  test('a keyword it does not check is refused when the schema is compiled', () => {
    assert.throws(() => compileValidator({ type: 'object', properties: { a: { type: 'string', format: 'email' } } } as unknown as Schema), /format/);
    assert.throws(() => compileValidator({ type: 'number' }), /number/);
    assert.throws(() => compileValidator({ type: 'object', additionalProperties: true }), /additionalProperties/);
  });

  test('answers keep only the properties their schema lists', () => {
    const out = compileSerializer({ type: 'object', properties: { a: { type: 'string' }, b: { type: ['string', 'null'] } } });
    assert.equal(out({ a: 'x', b: null, secret: 'y' }), '{"a":"x","b":null}');
    assert.equal(out({ a: 'x', b: undefined }), '{"a":"x"}');
  });

  test('the routes refuse a body that breaks their schema with 400 ERR_BAD_REQUEST', withRelay({}, async (relay) => {
    expectError(await post(relay, '/join', { role: 'sender', extra: true }), 400, 'ERR_BAD_REQUEST');
    expectError(await post(relay, '/join', { role: 'nobody' }), 400, 'ERR_BAD_REQUEST');
    expectError(await post(relay, '/channel', { channel: 'x', uuid: 'y', wait: -1 }), 400, 'ERR_BAD_REQUEST');
    const ok = await post(relay, '/join', { role: 'sender' });
    assert.equal(ok.status, 200);
    assert.deepEqual(Object.keys(ok.body).sort(), ['channel', 'curve', 'role', 'state', 'tcpPort', 'uuid', 'version', 'web']);
  }));
});
