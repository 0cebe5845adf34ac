/**
 * Issue 11, "seats follow admission": addresses that play both sides of junk channels (the relay
 * cannot check PAKE fields) and seat a socket in each, plus sockets that never say hello, do not
 * take the seats of a pair that completed its key agreement. Small limits, same rule as the
 * defaults: filling the pre-hello sockets takes maxPendingSockets / maxPendingSocketsPerAddress
 * addresses, filling the channels (and so the seats) maxChannels / maxChannelsPerAddress; the
 * attack uses fewer addresses than either, and more seated sockets than maxPendingSockets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JoinResponse } from '../src/core/relay-api.js';
import { buildRelay } from '../src/relay/index.js';
import { legitTransfer } from './helpers/legit.js';
import { Client, H_K, HH_K, X, Y, expectError, expectRefused, metric, post, until } from './relay-helpers.js';

const LIMITS = { maxPendingSockets: 12, maxPendingSocketsPerAddress: 2, maxChannels: 40, maxChannelsPerAddress: 4 } as const;
const ATTACKERS = 5; // < 12 / 2 and < 40 / 4

test('seat hogging from many addresses: junk is bounded per address, a legitimate pair still gets its seats', { timeout: 60_000 }, async () => {
  const relay = buildRelay({ port: 0, tcpPort: 0, ...LIMITS });
  const { httpPort, tcpPort } = await relay.listen();
  const held: Client[] = [];
  try {
    for (let i = 0; i < ATTACKERS; i++) {
      const from = { remoteAddress: `127.0.0.${i + 2}` };
      for (let c = 0; c < LIMITS.maxChannelsPerAddress; c++) {
        // both sides of a junk channel, junk key agreement, one seated socket that never gets a partner
        const s = await post<JoinResponse>(relay, '/join', { role: 'sender' }, from);
        assert.equal(s.status, 200, JSON.stringify(s.body));
        const channel = s.body.channel;
        const r = await post<JoinResponse>(relay, '/join', { role: 'recipient', channel }, from);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        for (const body of [{ channel, uuid: s.body.uuid, x: X }, { channel, uuid: r.body.uuid, y: Y, hh_k: HH_K }, { channel, uuid: s.body.uuid, h_k: H_K }])
          assert.equal((await post(relay, '/channel', body, from)).status, 200);
        const seated = await Client.connect(tcpPort, { localAddress: from.remoteAddress });
        seated.hello(channel, s.body.uuid);
        held.push(seated);
      }
      // the address's channel quota is its bound
      expectError(await post(relay, '/join', { role: 'sender' }, from), 429, 'ERR_RATE_LIMITED');
      // and sockets that never say hello, up to the per-address cap; one more is refused
      for (let k = 0; k < LIMITS.maxPendingSocketsPerAddress; k++) held.push(await Client.connect(tcpPort, { localAddress: from.remoteAddress }));
      await until(() => relay.tcp.pendingCount === (i + 1) * LIMITS.maxPendingSocketsPerAddress, 'the silent sockets');
      const extra = await Client.connect(tcpPort, { localAddress: from.remoteAddress });
      await expectRefused(extra, 'ERR_TOO_MANY_CONNECTIONS');
    }
    const seats = ATTACKERS * LIMITS.maxChannelsPerAddress;
    await until(() => relay.tcp.waitingCount === seats, 'every junk socket seated');
    assert.ok(seats > LIMITS.maxPendingSockets, 'more seats are held than there are pending places');
    assert.equal(relay.tcp.pendingCount, ATTACKERS * LIMITS.maxPendingSocketsPerAddress);
    assert.equal(await metric(relay, 'tsc_croc_relay_tcp_sockets_waiting'), seats);

    await legitTransfer(`http://127.0.0.1:${httpPort}`);

    assert.equal(relay.tcp.waitingCount, seats, 'the junk seats are still held');
    assert.equal(await metric(relay, 'tsc_croc_relay_rejections_total{source="tcp",code="ERR_TOO_MANY_CONNECTIONS"}'), ATTACKERS);
  } finally {
    for (const c of held) c.socket.destroy();
    await relay.close();
  }
});
