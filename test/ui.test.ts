/**
 * What the CLI shows (src/cli/ui.ts, src/cli/colour.ts): stage wording per route, Done lines per
 * kind and side, colour rules, the speed after a resume, the current file from the first. The UI
 * is fed events directly, with an injected clock and streams that record what is written.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { colourWanted, paintMessage, coloursFor } from '../src/cli/colour.js';
import { TransferUi, doneText, stageText, type Role } from '../src/cli/ui.js';
import type { Stage, TransferEvent } from '../src/transfer/events.js';

const MB = 1_000_000;
const SGR = /\x1b\[[0-9;]*m/;

/** A stream that records what is written; `tty` decides what the UI and the bars see. */
function recorder(tty: boolean, columns = 100) {
  const chunks: string[] = [];
  const s = {
    isTTY: tty,
    columns,
    write(d: string | Uint8Array, ...rest: unknown[]) {
      chunks.push(typeof d === 'string' ? d : Buffer.from(d).toString());
      const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    },
    on: () => s,
    once: () => s,
    off: () => s,
    removeListener: () => s,
    text: () => chunks.join(''),
  };
  return s;
}

const SENDER: Stage[] = ['connecting', 'waiting', 'securing', 'transferring'];
const RECIPIENT: Stage[] = ['connecting', 'securing', 'transferring'];

function ui(role: Role, o: { env?: NodeJS.ProcessEnv; tty?: boolean; progress?: boolean; json?: boolean; clock?: { t: number } } = {}) {
  const stderr = recorder(o.tty ?? false);
  const stdout = recorder(o.tty ?? false);
  const clock = o.clock ?? { t: 0 };
  const u = new TransferUi({
    json: o.json ?? false,
    progress: o.progress ?? false,
    stderr: stderr as unknown as NodeJS.WriteStream,
    stdout: stdout as unknown as NodeJS.WriteStream,
    stages: role === 'sender' ? SENDER : RECIPIENT,
    role,
    env: o.env ?? {},
    now: () => clock.t,
  });
  return { u, stderr, stdout, clock, lines: () => stderr.text().split('\n').filter((l) => l !== '') };
}

test('the connecting stage says what happens: relay, local network, or both; securing says how the sides met', () => {
  const c = (relay: string | undefined, local: boolean): TransferEvent & { type: 'stage' } => ({ type: 'stage', stage: 'connecting', relay, local });
  assert.equal(stageText(c(undefined, true), 'sender', true, null), 'Announcing on the local network');
  assert.equal(stageText(c(undefined, true), 'recipient', true, null), 'Looking for the sender on the local network');
  assert.equal(stageText(c('relay.example:9009', false), 'sender', false, null), 'Connecting to the relay relay.example:9009');
  assert.equal(stageText(c('relay.example:9009', false), 'recipient', false, null), 'Connecting to the relay relay.example:9009');
  assert.equal(stageText(c('relay.example:9009', true), 'sender', true, null), 'Connecting to the relay relay.example:9009 and announcing on the local network');
  assert.equal(stageText(c('relay.example:9009', true), 'recipient', true, null), 'Looking for the sender on the local network, then at the relay relay.example:9009');
  const securing = { type: 'stage', stage: 'securing' } as const;
  assert.equal(stageText(securing, 'recipient', true, 'lan'), 'Securing the connection (SPAKE2, local network)');
  assert.equal(stageText(securing, 'recipient', true, 'relay'), 'Securing the connection (SPAKE2, through the relay)');
  assert.equal(stageText(securing, 'recipient', false, 'relay'), 'Securing the connection (SPAKE2)');
  // a relay name is shown made harmless
  assert.equal(stageText(c('evil\x1b[2J:1', false), 'sender', false, null), 'Connecting to the relay evil\ufffd[2J:1');

  // through the UI: numbered, in order, the route on the securing line
  const { u, lines } = ui('recipient');
  u.onEvent(c(undefined, true));
  u.onEvent({ type: 'route', via: 'lan' });
  u.onEvent({ type: 'stage', stage: 'securing' });
  assert.deepEqual(lines(), ['[1/3] Looking for the sender on the local network...', '[2/3] Securing the connection (SPAKE2, local network)...']);
});

test('the Done line is right for piped data, a text and files, on each side, with the time and the speed of what moved', () => {
  const done = (e: Partial<TransferEvent & { type: 'done' }>) => ({ type: 'done', kind: 'files', files: 0, bytes: 0, resumedBytes: 0, movedBytes: 0, ...e }) as TransferEvent & { type: 'done' };
  assert.equal(doneText(done({ kind: 'stream', bytes: 10_200, movedBytes: 10_200 }), 'sender', 0.5), 'Done: sent 10.2 kB of piped data (in 0.50 s, 20.4 kB/s).');
  assert.equal(doneText(done({ kind: 'stream', bytes: 10_200, movedBytes: 10_200 }), 'recipient', 0.5), 'Done: received 10.2 kB of piped data (in 0.50 s, 20.4 kB/s).');
  assert.equal(doneText(done({ kind: 'text', bytes: 11, movedBytes: 11 }), 'sender', 0.01), 'Done: sent a text (11 B).');
  assert.equal(doneText(done({ kind: 'text', bytes: 11, movedBytes: 11 }), 'recipient', 0.01), 'Done: received a text (11 B).');
  assert.equal(doneText(done({ files: 3, bytes: 1.2 * MB, movedBytes: 1.2 * MB }), 'sender', 0.4), 'Done: 3 files, 1.2 MB (in 0.40 s, 3.0 MB/s).');
  assert.equal(doneText(done({ files: 1, bytes: 5 }), 'recipient', 0), 'Done: 1 file, 5 B (in 0.00 s).');
  // after a resume: the speed is that of what this run moved
  assert.equal(
    doneText(done({ files: 1, bytes: 200 * MB, resumedBytes: 136 * MB, movedBytes: 64 * MB }), 'sender', 1),
    'Done: 1 file, 200.0 MB (64.0 MB sent in 1.0 s, 64.0 MB/s; 136.0 MB of it resumed from an interrupted transfer).',
  );

  // through the UI: the time is from the transfer's start (the clock), green only with colour
  const { u, lines, clock } = ui('sender');
  clock.t = 10_000;
  u.onEvent({ type: 'stage', stage: 'transferring', kind: 'stream', files: 0 });
  u.onEvent({ type: 'progress', bytes: 10_200, totalBytes: 0 });
  clock.t = 10_250;
  u.onEvent(done({ kind: 'stream', bytes: 10_200, movedBytes: 10_200 }));
  assert.equal(lines().at(-1), 'Done: sent 10.2 kB of piped data (in 0.25 s, 40.8 kB/s).');
});

test('colour: NO_COLOR never, FORCE_COLOR always (0/false: never), else a terminal that is not dumb', () => {
  const tty = { isTTY: true };
  const pipe = { isTTY: false };
  assert.equal(colourWanted(tty, {}), true);
  assert.equal(colourWanted(pipe, {}), false);
  assert.equal(colourWanted(tty, { TERM: 'dumb' }), false);
  assert.equal(colourWanted(tty, { NO_COLOR: '1' }), false);
  assert.equal(colourWanted(tty, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(colourWanted(pipe, { FORCE_COLOR: '1' }), true);
  assert.equal(colourWanted(pipe, { FORCE_COLOR: '1', NO_COLOR: '1' }), false, 'NO_COLOR wins');
  assert.equal(colourWanted(tty, { FORCE_COLOR: '0' }), false);
  assert.equal(colourWanted(tty, { FORCE_COLOR: 'false' }), false);
  // an error's prefix red, a warning's yellow; the text itself unchanged
  const c = coloursFor(pipe, { FORCE_COLOR: '1' });
  assert.equal(paintMessage('tsc-croc: cancelled [ERR_CANCELLED]', c), '\x1b[31mtsc-croc:\x1b[39m cancelled [ERR_CANCELLED]');
  assert.equal(paintMessage('tsc-croc: warning: careful', c), '\x1b[33mtsc-croc: warning:\x1b[39m careful');
  assert.equal(paintMessage('tsc-croc relay: warning: x', c), '\x1b[33mtsc-croc relay: warning:\x1b[39m x');
  assert.equal(paintMessage('other', c), 'other');
  assert.equal(paintMessage('tsc-croc: cancelled', coloursFor(pipe, {})), 'tsc-croc: cancelled');

  // the UI: dim stage numbers, green Done, bold code (stdout decides for itself); none in --json
  for (const [env, tty, want] of [[{}, true, true], [{ NO_COLOR: '1' }, true, false], [{ FORCE_COLOR: '1' }, false, true], [{}, false, false]] as const) {
    const { u, stderr, stdout } = ui('sender', { env, tty });
    u.onEvent({ type: 'stage', stage: 'connecting', local: true });
    u.showCode('7-a-b-c');
    u.onEvent({ type: 'done', kind: 'text', files: 0, bytes: 11, resumedBytes: 0, movedBytes: 11 });
    assert.equal(SGR.test(stderr.text()), want, `${JSON.stringify(env)} tty=${tty}: ${JSON.stringify(stderr.text())}`);
    assert.equal(SGR.test(stdout.text()), want, `${JSON.stringify(env)} tty=${tty}: ${JSON.stringify(stdout.text())}`);
    if (want) {
      assert.match(stderr.text(), /\x1b\[2m\[1\/4\]\x1b\[22m Announcing on the local network\.\.\./);
      assert.match(stderr.text(), /\x1b\[32mDone: sent a text \(11 B\)\.\x1b\[39m/);
      assert.equal(stdout.text(), 'Code is: \x1b[1m7-a-b-c\x1b[22m\n');
    }
  }
  const { u, stdout } = ui('sender', { env: { FORCE_COLOR: '1' }, json: true });
  u.onEvent({ type: 'stage', stage: 'connecting', local: true });
  u.stop();
  assert.ok(!SGR.test(stdout.text()) && stdout.text().includes('"local":true'), stdout.text());
});

/** A UI with bars (a fake terminal), once its bar module has loaded; stopped when the test ends, even by a failure (the bars' timer would keep the process up). */
async function withBars(ctx: TestContext, role: Role) {
  const t = ui(role, { tty: true, progress: true });
  ctx.after(() => t.u.stop());
  await import('cli-progress');
  await new Promise((r) => setImmediate(r));
  return t;
}

test('after a resume the speed and the time left count only the bytes moved now', async (t) => {
  const { u, stderr, clock } = await withBars(t, 'recipient');
  clock.t = 0;
  u.onEvent({ type: 'stage', stage: 'transferring', kind: 'files', files: 1 });
  // 150 MB were already here: they arrive as one jump, at once
  u.onEvent({ type: 'file-start', path: 'big.bin', size: 400 * MB, offset: 150 * MB });
  u.onEvent({ type: 'progress', bytes: 150 * MB, totalBytes: 400 * MB });
  let bytes = 150 * MB;
  for (let i = 1; i <= 20; i++) {
    clock.t = i * 100;
    bytes += 6.4 * MB; // 64 MB/s
    u.onEvent({ type: 'progress', bytes, totalBytes: 400 * MB });
  }
  u.stop();
  const speeds = [...stderr.text().matchAll(/\| ([\d.]+) MB\/s \|/g)].map((m) => Number(m[1]));
  assert.ok(speeds.length > 0, JSON.stringify(stderr.text()));
  assert.equal(speeds.at(-1), 64, `the last speed shown: ${speeds.join(', ')} (with the resumed bytes it would be 139)`);
  // 122 MB left at 64 MB/s
  assert.match(stderr.text(), /\| ETA 2 s[^]*$/);
  assert.match(stderr.text(), /resuming big\.bin at 150\.0 MB of 400\.0 MB/);
  // a single file: its name on the bar line, no "total"
  assert.match(stderr.text(), / {2}big\.bin +\S+ \d+% \|/);
  assert.doesNotMatch(stderr.text(), /total/);
});

test('the current file is shown from the first file on (a bar per file, under the total)', async (t) => {
  const { u, stderr } = await withBars(t, 'sender');
  u.onEvent({ type: 'stage', stage: 'transferring', kind: 'files', files: 3 });
  u.onEvent({ type: 'file-start', path: 'first.bin', size: 10, offset: 0 });
  u.onEvent({ type: 'progress', bytes: 10, totalBytes: 30 });
  const firstDraw = stderr.text();
  assert.match(firstDraw, / {2}total +\S+ 33% \|/);
  assert.match(firstDraw, / {2}first\.bin +\S+ 100%/);
  u.onEvent({ type: 'file-done', path: 'first.bin', size: 10 });
  u.onEvent({ type: 'file-start', path: 'second.bin', size: 20, offset: 0 });
  u.onEvent({ type: 'progress', bytes: 20, totalBytes: 30 });
  u.stop();
  assert.match(stderr.text().slice(firstDraw.length), / {2}second\.bin +\S+ 50%/);
});

test('a text gets no bar, and without a terminal the files are listed by name', async (t) => {
  const { u, stderr } = await withBars(t, 'recipient');
  u.onEvent({ type: 'stage', stage: 'transferring', kind: 'text', files: 0 });
  u.onEvent({ type: 'progress', bytes: 11, totalBytes: 11 });
  u.onEvent({ type: 'done', kind: 'text', files: 0, bytes: 11, resumedBytes: 0, movedBytes: 11 });
  assert.doesNotMatch(stderr.text(), /%/);
  const plain = ui('recipient');
  plain.u.onEvent({ type: 'file-done', path: 'a.txt', size: 3 });
  assert.deepEqual(plain.lines(), ['  a.txt (3 B)']);
});
