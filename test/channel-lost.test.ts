/**
 * A sender whose channel the relay loses while it waits (a relay, or its Redis, restarted empty):
 * it says so in a sender's words, not the recipient's ("no sender is waiting on that channel").
 * A real relay on loopback; its store forgets the channel as a restarted store would.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TscCrocError, send } from '../src/index.js';
import { buildRelay } from '../src/relay/index.js';

test("the sender's channel is gone from the relay while it waits: ERR_CHANNEL_NOT_FOUND, send again for a new code", { timeout: 60_000 }, async () => {
  const relay = buildRelay({ host: '127.0.0.1', port: 0, tcpPort: 0 });
  await relay.listen();
  const dir = await mkdtemp(join(tmpdir(), 'tsc-croc-lost-'));
  try {
    const file = join(dir, 'a.txt');
    await writeFile(file, 'hello');
    const url = `http://127.0.0.1:${(relay.app.server.address() as { port: number }).port}`;
    const e = await send({
      relay: url,
      lan: 'off',
      files: [file],
      onEvent: (ev) => {
        if (ev.type === 'code') void relay.store.remove(ev.code.split('-')[0]!);
      },
    }).catch((x: unknown) => x);
    assert.ok(e instanceof TscCrocError && e.code === 'ERR_CHANNEL_NOT_FOUND', String(e));
    assert.equal(e.message, "the relay no longer has this transfer's channel (the relay or its store restarted): send again for a new code");
  } finally {
    await relay.close();
    await rm(dir, { recursive: true, force: true });
  }
});
