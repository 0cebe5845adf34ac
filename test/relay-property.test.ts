/**
 * Property test: random sequences of API calls from several clients (some sharing an address,
 * some stealing each other's uuids, some sending garbage) against one relay, through inject().
 * Invariants after every request: the relay answers (never a 5xx, always a documented status and
 * code), a channel never has more than two participants, and a field is only ever written by the
 * participant that owns it, with its own uuid, from the address it joined from.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RELAY_ERROR_CODES, type ChannelState, type JoinResponse, type Role } from '../src/core/relay-api.js';
import { MAX_HELLO_BYTES, RELAY_PROTOCOL_VERSION, encodeControlFrame } from '../src/core/relay-api.js';
import { RELAY_ERROR_STATUS, type Relay } from '../src/relay/index.js';
import { Client, forEachStore, staple, until } from './relay-helpers.js';

const ADDRESSES = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '::ffff:10.0.0.3'];
const NAMES = ['a', 'b', 'c'];
const HEX = ['a1'.repeat(32), 'b2'.repeat(32), 'c3'.repeat(32), 'd4'.repeat(32)];
const FIELDS = ['x', 'y', 'hh_k', 'h_k'] as const;
const codes: ReadonlySet<string> = new Set(RELAY_ERROR_CODES);

interface Joined {
  uuid: string;
  channel: string;
  /** Which channel of that name (0: the first; a closed channel's name is taken again by the next sender). */
  gen: number;
  role: Role;
  address: string;
  /** A recipient that left before the key agreement completed: it reads the channel as closed. */
  evicted?: boolean;
}

type Action =
  | { kind: 'join'; client: number; role: Role; name: string | null; curve: 'ed25519' | 'p256' | null }
  | {
      kind: 'channel';
      client: number;
      /** Send from the uuid's own join address, or from a client's. */
      from: 'own' | number;
      /** Which known uuid to use (mod the number known), or a random one. */
      who: number | 'random';
      /** The channel named: the uuid's own, or one from NAMES. */
      target: 'own' | string;
      x: string | null;
      yh: [string, string] | null;
      y: string | null;
      h_k: string | null;
      close: boolean | null;
      reason: string | null;
      since: number | null;
    }
  | { kind: 'garbage'; client: number; url: '/join' | '/channel'; payload: string }
  /** A well-behaved move of a known participant: its next write, from its own address. */
  | { kind: 'step'; who: number; value: string };

const client = fc.nat({ max: ADDRESSES.length - 1 });
const hex = fc.constantFrom(...HEX);
/** `arb` one time in `odds`, null otherwise. */
const rarely = <T>(arb: fc.Arbitrary<T>, odds: number) =>
  fc.oneof({ weight: odds - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });
const orNull = <T>(arb: fc.Arbitrary<T>) => rarely(arb, 2);

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('join' as const), client, role: fc.constantFrom<Role>('sender', 'recipient'), name: fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 4, arbitrary: fc.constantFrom(...NAMES) }), curve: orNull(fc.constantFrom('ed25519' as const, 'p256' as const)) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('channel' as const),
      client,
      from: fc.oneof({ weight: 4, arbitrary: fc.constant('own' as const) }, { weight: 1, arbitrary: client }),
      who: fc.oneof({ weight: 5, arbitrary: fc.nat({ max: 20 }) }, { weight: 1, arbitrary: fc.constant('random' as const) }),
      target: fc.oneof({ weight: 4, arbitrary: fc.constant('own') }, { weight: 1, arbitrary: fc.constantFrom(...NAMES) }),
      x: rarely(hex, 3),
      yh: rarely(fc.tuple(hex, hex), 3),
      y: rarely(hex, 10),
      h_k: rarely(hex, 3),
      close: rarely(fc.boolean(), 6),
      reason: rarely(fc.constantFrom('done', 'wrong-code', 'cancelled', 'error', 'expired', 'bogus'), 6),
      since: rarely(fc.nat({ max: 20 }), 6),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('step' as const), who: fc.nat({ max: 20 }), value: hex }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('garbage' as const),
      client,
      url: fc.constantFrom('/join' as const, '/channel' as const),
      payload: fc.oneof(fc.string({ maxLength: 60 }), fc.json({ maxDepth: 2 }), fc.constant('{"role":"sender","__proto__":{"x":1}}')),
    }),
  },
);

/** Successful writes per field over the whole test: the property must not pass vacuously. */
const accepted: Record<string, number> = { x: 0, y: 0, hh_k: 0, h_k: 0, close: 0, refused: 0 };

const norm = (a: string) => (a.startsWith('::ffff:') ? a.slice(7) : a);

async function run(relay: Relay, actions: Action[]): Promise<void> {
  const joined: Joined[] = [];
  /** Per channel: successful joins, and the values written (by whom). Keyed by name#generation: a closed channel's name is taken again by the next sender join. */
  const model = new Map<string, { joins: number; closed: boolean; fields: Partial<Record<(typeof FIELDS)[number], string>> }>();
  /** The generation of each name: how many channels held it before the newest. */
  const generation = new Map<string, number>();
  const key = (name: string, gen = generation.get(name) ?? 0) => `${name}#${gen}`;

  for (const act of actions) {
    let address = ADDRESSES[act.kind === 'step' ? 0 : act.client]!;
    let url: string;
    let payload: string | object;
    let used: Joined | undefined;
    let request: Record<string, unknown> = {};
    if (act.kind === 'join') {
      url = '/join';
      request = { role: act.role, ...(act.name === null ? {} : { channel: act.name }), ...(act.curve === null ? {} : { curve: act.curve }) };
      payload = request;
    } else if (act.kind === 'channel') {
      url = '/channel';
      used = act.who === 'random' || joined.length === 0 ? undefined : joined[act.who % joined.length];
      const uuid = used?.uuid ?? crypto.randomUUID();
      if (act.from !== 'own') address = ADDRESSES[act.from]!;
      else if (used !== undefined) address = used.address;
      const channel = act.target === 'own' ? (used?.channel ?? 'a') : act.target;
      request = { channel, uuid };
      if (act.x !== null) request.x = act.x;
      if (act.yh !== null) [request.y, request.hh_k] = act.yh;
      else if (act.y !== null) request.y = act.y;
      if (act.h_k !== null) request.h_k = act.h_k;
      if (act.close !== null) request.close = act.close;
      if (act.reason !== null) request.reason = act.reason;
      if (act.since !== null) request.since = act.since;
      payload = request;
    } else if (act.kind === 'step') {
      if (joined.length === 0) continue;
      url = '/channel';
      used = joined[act.who % joined.length]!;
      address = used.address;
      const written = model.get(key(used.channel, used.gen))?.fields ?? {};
      request = { channel: used.channel, uuid: used.uuid };
      if (used.role === 'recipient') Object.assign(request, { y: act.value, hh_k: act.value });
      else if (written.x === undefined) request.x = act.value;
      else request.h_k = act.value;
      payload = request;
    } else {
      url = act.url;
      payload = act.payload;
    }

    const res = await relay.app.inject({
      method: 'POST',
      url,
      remoteAddress: address,
      ...(typeof payload === 'string' ? { payload, headers: { 'content-type': 'application/json' } } : { payload }),
    });

    // The relay answers, with a documented status and code, never a 5xx.
    const body = res.json() as Record<string, unknown>;
    if (res.statusCode !== 200) {
      assert.ok(typeof body.code === 'string' && codes.has(body.code), `documented code: ${res.body}`);
      assert.equal(RELAY_ERROR_STATUS[body.code as keyof typeof RELAY_ERROR_STATUS], res.statusCode, res.body);
      assert.ok(res.statusCode < 500, `no server error: ${res.body}`);
      accepted.refused!++;
      continue;
    }

    if (url === '/join') {
      const j = body as unknown as JoinResponse;
      assert.equal(act.kind, 'join', 'garbage never joins');
      const before = model.get(key(j.channel));
      if (j.role === 'sender' && before !== undefined) {
        // a sender joins a name only when the channel that held it is closed: a fresh channel
        const prev = joined.find((p) => p.channel === j.channel && p.gen === (generation.get(j.channel) ?? 0) && p.role === 'sender');
        assert.ok(prev !== undefined && (await relay.store.peek({ channel: j.channel, uuid: prev.uuid }))?.closed === true, 'a sender takes a name only from a closed channel');
        generation.set(j.channel, (generation.get(j.channel) ?? 0) + 1);
      }
      const m = model.get(key(j.channel)) ?? { joins: 0, closed: false, fields: {} };
      m.joins++;
      model.set(key(j.channel), m);
      assert.ok(m.joins <= 2, `channel ${j.channel} has ${m.joins} participants`);
      const gen = generation.get(j.channel) ?? 0;
      assert.ok(!joined.some((p) => p.channel === j.channel && p.gen === gen && p.role === j.role && p.evicted !== true), 'one participant per role');
      joined.push({ uuid: j.uuid, channel: j.channel, gen, role: j.role, address: norm(address) });
      continue;
    }

    // A 200 on /channel: the caller is a participant of the named channel, from its join address.
    assert.notEqual(act.kind, 'garbage', 'garbage never reads a channel');
    assert.ok(used !== undefined, 'a random uuid is never a participant');
    const state = body as unknown as ChannelState;
    assert.equal(state.channel, used.channel, "a uuid never reaches another channel's state");
    assert.equal(norm(address), used.address, 'a uuid is only valid from its join address');
    const m = model.get(key(used.channel, used.gen))!;
    if (used.evicted === true) {
      // an evicted recipient reads the channel as closed, with nothing in it, and writes nothing
      assert.ok(FIELDS.every((f) => request[f] === undefined), 'an evicted recipient never writes');
      assert.ok(state.closed && FIELDS.every((f) => state[f] === null), 'an evicted recipient reads a closed channel');
      continue;
    }
    if (used.role === 'recipient' && request.close === true && !m.closed && m.fields.h_k === undefined) {
      // a recipient that closes before the key agreement completed leaves its seat: x, y, hh_k are cleared
      used.evicted = true;
      m.joins--;
      delete m.fields.x;
      delete m.fields.y;
      delete m.fields.hh_k;
      accepted.close!++;
      assert.ok(state.closed && FIELDS.every((f) => state[f] === null), 'the leaving recipient reads a closed channel');
      m.closed = used.gen === generation.get(used.channel) ? (await relay.store.get(used.channel))!.closed : true;
      continue;
    }
    for (const f of FIELDS) {
      const written = request[f];
      if (typeof written === 'string') {
        const owner: Role = f === 'x' || f === 'h_k' ? 'sender' : 'recipient';
        assert.equal(used.role, owner, `${f} written by the ${used.role}`);
        assert.equal(m.fields[f], undefined, `${f} written twice`);
        m.fields[f] = written;
        accepted[f]!++;
      }
      assert.equal(state[f], m.fields[f] ?? null, `${f} is what its owner wrote`);
    }
    if (state.closeReason !== null) assert.ok(state.closed);
    m.closed = state.closed;
    if (request.close === true) accepted.close!++;
    assert.ok(!(request.reason === 'expired' || request.reason === 'bogus'), 'peers never post expired');
  }

  // The store agrees with the model: never more than two participants anywhere.
  for (const [name, gen] of [...new Set([...model.keys()].map((k) => k.split('#')[0]!))].map((n) => [n, key(n)] as const)) {
    const m = model.get(gen)!;
    const s = (await relay.store.get(name));
    assert.ok(s !== undefined);
    assert.equal(Number(s.sender) + Number(s.recipient), m.joins);
  }
}

forEachStore((S) => {
  test('random API call sequences from several clients keep the relay answering and the invariants true', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 60, size: 'max' }), async (actions) => {
        const relay = S.build({ maxChannelsPerAddress: 1000, joinRateLimit: 10_000, channelRateLimit: 10_000, metrics: 'off' });
        try {
          await run(relay, actions);
        } finally {
          await relay.close();
        }
      }),
      { numRuns: S.name === 'redis' ? 60 : 200 },
    );
    for (const [what, n] of Object.entries(accepted)) assert.ok(n > 0, `some requests were ${what === 'refused' ? what : `accepted writing ${what}`}`);
  });
});

/** Random TCP openings: raw bytes, length-prefixed junk, hellos with wrong fields, split anywhere. */
const opening: fc.Arbitrary<Buffer[]> = fc
  .oneof(
    fc.uint8Array({ maxLength: 700 }).map((b) => Buffer.from(b)),
    fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 600 })).map(([n, b]) => {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(n);
      return Buffer.concat([head, b]);
    }),
    fc
      .record({ v: fc.constantFrom(RELAY_PROTOCOL_VERSION, 0, 2), channel: fc.constantFrom('a', 'zz', 'A-1'), uuid: fc.constantFrom(crypto.randomUUID(), 'nope'), extra: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }) })
      .map((h) => {
        const json = Buffer.from(JSON.stringify(h.extra === undefined ? { v: h.v, channel: h.channel, uuid: h.uuid } : h));
        const head = Buffer.alloc(2);
        head.writeUInt16BE(Math.min(json.length, MAX_HELLO_BYTES + 1));
        return Buffer.concat([head, json]);
      }),
  )
  .chain((bytes) => fc.array(fc.nat({ max: bytes.length }), { maxLength: 3 }).map((cuts) => {
    const points = [...new Set([0, ...cuts.sort((x, y) => x - y), bytes.length])];
    return points.slice(1).map((end, i) => bytes.subarray(points[i], end));
  }));

forEachStore((S) => {
  test('random TCP openings are each refused or dropped, and the relay keeps stapling others', { timeout: 60_000 }, S.withRelay({ helloTimeoutMs: 100 }, async (relay) => {
    await fc.assert(
      fc.asyncProperty(opening, async (pieces) => {
        const c = await Client.connect(relay.tcp.port!);
        for (const piece of pieces) if (piece.length > 0) c.socket.write(piece);
        await c.until(() => c.closed, 'the relay to close the socket');
        const reply = c.data.length > 0 ? await c.reply() : undefined;
        if (reply !== undefined) assert.equal(reply.type, 'error');
      }),
      { numRuns: 60 },
    );
    await until(() => relay.tcp.connectionCount === 0, 'every refused socket to be gone');
    const { a, b } = await staple(relay);
    a.socket.end(Buffer.from(encodeControlFrame({ v: 1, type: 'stapled' })));
    await b.until(() => b.ended, 'b to receive');
    b.socket.end();
    await a.until(() => a.closed, 'a to close');
  }));
});
