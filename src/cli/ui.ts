/** Terminal output: numbered stages, progress bars, the Done line, a yes/no prompt, --json events. */
import type cliProgress from 'cli-progress';
import { TscCrocError } from '../core/errors.js';
import type { ContentKind, OfferInfo, Stage, TransferEvent } from '../transfer/events.js';
import { coloursFor, type Colours } from './colour.js';
import { etaSeconds, formatDuration, formatEta, sampleRate, speedOf, startRate, type Rate } from './rate.js';
import { walkLines } from './walk-report.js';

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

const SHOWN_NAMES = 5;

/** Text for a terminal: control and bidi characters (escape sequences among them) made harmless; newlines and tabs kept. */
export function safeForTerminal(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/gu, '\ufffd');
}

export function describeOffer(o: OfferInfo): string {
  if (o.kind === 'text') return `a text message (${formatBytes(o.totalBytes)})`;
  if (o.kind === 'stream') return 'piped data of unknown length (it goes to stdout)';
  const files = o.totalFiles === 1 ? '1 file' : `${o.totalFiles} files`;
  const what = o.totalDirs === 0 ? files : `${files} in ${o.totalDirs === 1 ? '1 folder' : `${o.totalDirs} folders`}`;
  const shown = o.names.slice(0, SHOWN_NAMES).join(', ');
  const more = o.names.length > SHOWN_NAMES ? `, and ${o.names.length - SHOWN_NAMES} more` : '';
  // names that start with a dot are easy to miss and can change how programs behave (.bashrc, .git)
  const hidden = o.names.filter((n) => n.startsWith('.'));
  const warn = hidden.length > 0 ? ` (hidden files: ${hidden.slice(0, SHOWN_NAMES).join(', ')}${hidden.length > SHOWN_NAMES ? ', ...' : ''})` : '';
  const here = o.existing.length > 0 ? `; already here: ${o.existing.slice(0, SHOWN_NAMES).join(', ')}${o.existing.length > SHOWN_NAMES ? ', ...' : ''}` : '';
  const held = o.heldBytes > 0 ? `; ${formatBytes(o.heldBytes)} of it already here from an interrupted transfer (resumed, not sent again)` : '';
  return `${what} (${formatBytes(o.totalBytes)}): ${shown}${more}${warn}${here}${held}`;
}

/** Which side the UI speaks for: the stage and Done lines say what this side does. */
export type Role = 'sender' | 'recipient';

type StageEvent = Extract<TransferEvent, { type: 'stage' }>;
type DoneEvent = Extract<TransferEvent, { type: 'done' }>;

/**
 * What a stage line says. 'connecting' says what actually happens: the relay it connects to,
 * the local network it announces on (sender) or looks on (recipient); 'securing' says which way
 * the two sides met when the local network was in play (`via`, from the route event).
 */
export function stageText(e: StageEvent, role: Role, local: boolean, via: 'relay' | 'lan' | null): string {
  switch (e.stage) {
    case 'connecting': {
      const relay = e.relay === undefined ? null : `the relay ${safeForTerminal(e.relay)}`;
      if (role === 'sender') {
        if (relay !== null) return e.local ? `Connecting to ${relay} and announcing on the local network` : `Connecting to ${relay}`;
        return e.local ? 'Announcing on the local network' : 'Connecting';
      }
      if (relay !== null) return e.local ? `Looking for the sender on the local network, then at ${relay}` : `Connecting to ${relay}`;
      return e.local ? 'Looking for the sender on the local network' : 'Connecting';
    }
    case 'securing':
      return local && via !== null ? `Securing the connection (SPAKE2, ${via === 'lan' ? 'local network' : 'through the relay'})` : 'Securing the connection (SPAKE2)';
    case 'waiting':
      return 'Waiting for the other side';
    case 'checking':
      return 'Checking what the recipient already has';
    case 'transferring':
      return 'Transferring';
  }
}

/**
 * The last line: what moved, how much, how long it took and how fast it went (from the bytes this
 * run moved, not those an interrupted run had already moved).
 */
export function doneText(e: DoneEvent, role: Role, seconds: number): string {
  const verb = role === 'sender' ? 'sent' : 'received';
  if (e.kind === 'text') return `Done: ${verb} a text (${formatBytes(e.bytes)}).`;
  const moved = e.movedBytes;
  const timing = `in ${formatDuration(seconds)}${seconds > 0 && moved > 0 ? `, ${formatBytes(moved / seconds)}/s` : ''}`;
  if (e.kind === 'stream') return `Done: ${verb} ${formatBytes(e.bytes)} of piped data (${timing}).`;
  const files = e.files === 1 ? '1 file' : `${e.files} files`;
  if (e.resumedBytes <= 0) return `Done: ${files}, ${formatBytes(e.bytes)} (${timing}).`;
  return `Done: ${files}, ${formatBytes(e.bytes)} (${formatBytes(moved)} ${verb} ${timing}; ${formatBytes(e.resumedBytes)} of it resumed from an interrupted transfer).`;
}

export interface UiOptions {
  json: boolean;
  progress: boolean;
  stderr: NodeJS.WriteStream;
  stdout: NodeJS.WriteStream;
  stages: Stage[];
  /** The side this UI speaks for (default: from the stage list: 'waiting' is the sender's). */
  role?: Role | undefined;
  /** The environment colour is decided from (NO_COLOR, FORCE_COLOR, TERM: src/cli/colour.ts); default none. */
  env?: NodeJS.ProcessEnv | undefined;
  /** The clock (ms), for the speed, the time left and the Done line; default Date.now. */
  now?: (() => number) | undefined;
}

/** Files listed one per line when there is no progress bar; beyond this, only the total. */
const LISTED_FILES = 20;
/** Per-file --json events are written together at most this often... */
const JSON_FLUSH_MS = 50;
/** ...or once this many are waiting. */
const JSON_BATCH_LINES = 512;
/** The bars' right part at its widest: " 100% | 999.9 MB / 999.9 MB | 999.9 MB/s | ETA 9 min 50 s". */
const BAR_TAIL = 56;

/** Turns transfer events into what the user sees; everything but results goes to stderr. */
export class TransferUi {
  readonly #o: UiOptions;
  readonly #role: Role;
  readonly #now: () => number;
  /** stderr's colours (none with --json, or when src/cli/colour.ts says so). */
  readonly #c: Colours;
  #bars: cliProgress.MultiBar | null = null;
  /** The overall bar; with a single file, it carries that file's name. */
  #total: cliProgress.SingleBar | null = null;
  /** The current file (from the first), when more than one file is sent. */
  #file: cliProgress.SingleBar | null = null;
  /** Files in the transfer (from the 'transferring' stage); null: not known. */
  #fileCount: number | null = null;
  #currentName = '';
  #currentSize = 0;
  /** What moves (from the 'transferring' stage): a text gets no bars. */
  #kind: ContentKind | null = null;
  #nameWidth = 20;
  #fileStart = 0;
  #bytes = 0;
  /** When the data started to move (the first 'transferring' stage), for the Done line. */
  #transferStart: number | null = null;
  /** Of the progress events' bytes in this connection, those resumed (file-start offsets). */
  #resumedHere = 0;
  /** Bytes moved in earlier connections of this run (before a reconnection). */
  #movedBefore = 0;
  #moved = 0;
  #rate: Rate | null = null;
  /** The local network was in play (the 'connecting' stage), and which way the sides met. */
  #local = false;
  #via: 'relay' | 'lan' | null = null;
  #lastProgress = 0;
  #listed = 0;
  /**
   * --json lines not yet written. Per-file events (file-start, file-done) are written together
   * at most every JSON_FLUSH_MS: with thousands of small files, one write to stdout per event
   * cost more than receiving the file. Every other event (progress is already at most one per
   * 200 ms) writes at once, after those waiting.
   */
  #jsonLines: string[] = [];
  #jsonTimer: NodeJS.Timeout | null = null;

  /** The progress bar module, loaded only when bars are wanted (a terminal), while the transfer starts. */
  #barsModule: typeof cliProgress | null = null;

  constructor(o: UiOptions) {
    this.#o = o;
    this.#role = o.role ?? (o.stages.includes('waiting') ? 'sender' : 'recipient');
    this.#now = o.now ?? Date.now;
    this.#c = coloursFor(o.json ? {} : o.stderr, o.json ? {} : (o.env ?? {}));
    if (o.progress && !o.json)
      import('cli-progress').then(
        (m) => (this.#barsModule = m.default),
        () => undefined, // no bars, the stage lines still show
      );
  }

  info(line: string): void {
    if (this.#o.json) return;
    if (this.#bars) this.#bars.log(`${line}\n`);
    else this.#o.stderr.write(`${line}\n`);
  }

  /** The code, on stdout (bold when stdout is a terminal that takes colour). */
  showCode(code: string): void {
    const c = coloursFor(this.#o.stdout, this.#o.env ?? {});
    this.#o.stdout.write(`Code is: ${c.bold(code)}\n`);
  }

  onEvent = (e: TransferEvent): void => {
    if (this.#o.json) {
      if (e.type === 'progress') {
        const now = this.#now();
        if (now - this.#lastProgress < 200 && e.bytes !== e.totalBytes) return;
        this.#lastProgress = now;
      }
      this.#jsonLines.push(`${JSON.stringify({ event: e.type, ...e, type: undefined })}\n`);
      if (e.type !== 'file-start' && e.type !== 'file-done') this.#flushJson();
      else if (this.#jsonLines.length >= JSON_BATCH_LINES) this.#flushJson();
      else this.#jsonTimer ??= setTimeout(() => this.#flushJson(), JSON_FLUSH_MS);
      return;
    }
    const c = this.#c;
    switch (e.type) {
      case 'stage': {
        if (e.stage === 'connecting') this.#local = e.local === true;
        if (e.stage === 'transferring') {
          if (this.#transferStart === null) {
            this.#transferStart = this.#now();
            this.#rate = startRate(this.#transferStart, 0);
          }
          if (e.files !== undefined) this.#fileCount = e.files;
          if (e.kind !== undefined) this.#kind = e.kind;
        }
        const text = stageText(e, this.#role, this.#local, this.#via);
        const i = this.#o.stages.indexOf(e.stage);
        if (i >= 0) this.info(`${c.dim(`[${i + 1}/${this.#o.stages.length}]`)} ${text}...`);
        else if (e.stage === 'checking') this.info(`${text}...`);
        break;
      }
      case 'route':
        this.#via = e.via;
        break;
      case 'reconnecting':
        // the next connection counts its bytes from 0 again, the resumed ones first
        this.#movedBefore = this.#moved;
        this.#resumedHere = 0;
        this.info(c.yellow(`Connection lost (${e.reason}); reconnecting for up to ${Math.max(0, Math.round((e.untilMs - Date.now()) / 1000))} s...`));
        break;
      case 'waiting-for-sender': {
        const s = Math.max(0, Math.round((e.untilMs - Date.now()) / 1000));
        this.info(`Waiting for the sender ${e.via === 'lan' ? 'on the local network' : 'on the relay'}... (up to ${s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`}; Ctrl-C to stop)`);
        break;
      }
      case 'reconnected':
        this.info('Reconnected; continuing where it stopped.');
        break;
      case 'created-folder':
        this.info(`Created folder ${e.path}`);
        break;
      case 'reading':
      case 'left-out':
        for (const line of walkLines(e)) this.info(line);
        break;
      case 'wrong-code':
        this.info(c.yellow(`Someone tried a wrong code (${e.attempt} of ${e.maxAttempts})${e.attempt < e.maxAttempts ? ': still waiting for the right one' : ''}.`));
        break;
      case 'file-start':
        if (e.offset > 0) {
          this.info(`  resuming ${e.path} at ${formatBytes(e.offset)} of ${formatBytes(e.size)}`);
          this.#resumedHere += e.offset;
        }
        this.#fileStart = this.#bytes;
        this.#currentName = e.path;
        this.#currentSize = e.size;
        if (this.#file !== null) {
          this.#file.setTotal(Math.max(1, e.size));
          this.#file.update(0, { name: fit(e.path, this.#nameWidth) });
        } else if (this.#total !== null && this.#fileCount === 1) this.#total.update({ name: fit(e.path, this.#nameWidth) });
        break;
      case 'progress': {
        this.#bytes = e.bytes;
        this.#moved = Math.max(this.#moved, this.#movedBefore + Math.max(0, e.bytes - this.#resumedHere));
        // the speed and ETA are for the bars alone (a record's progress is 1 MiB: no per-record work without them)
        if (this.#o.progress && !this.#o.json) {
          const now = this.#now();
          this.#rate = this.#rate === null ? startRate(now, this.#moved) : sampleRate(this.#rate, now, this.#moved);
        }
        const starting = !this.#bars && this.#barsModule !== null && e.totalBytes > 0 && this.#kind !== 'text';
        if (starting) this.#startBars(this.#barsModule!, e.totalBytes);
        this.#total?.update(e.bytes, this.#payload(e.bytes, e.totalBytes));
        this.#file?.update(e.bytes - this.#fileStart);
        // drawn now, with the first file's name (else only after 1/fps s: a small file would be done by then)
        if (starting) this.#bars?.update();
        break;
      }
      case 'file-done':
        if (!this.#bars && this.#listed < LISTED_FILES) {
          this.#listed++;
          this.info(`  ${e.path} (${formatBytes(e.size)})`);
        }
        break;
      case 'done':
        this.stop();
        this.info(c.green(doneText(e, this.#role, (this.#now() - (this.#transferStart ?? this.#now())) / 1000)));
        break;
      default:
        break;
    }
  };

  /** The bars, on the first progress that knows the total: one for a single file (with its name), else the total and the current file. */
  #startBars(bars: typeof cliProgress, total: number): void {
    const single = this.#fileCount === 1;
    // fit the terminal: the name gets up to 24 columns of what the numbers leave, the bar the rest (8 to 40)
    const room = Math.max(16, (this.#o.stderr.columns || 80) - BAR_TAIL - 3);
    const barsize = Math.min(40, Math.max(8, room - 24));
    this.#nameWidth = Math.min(32, Math.max(8, room - barsize));
    this.#bars = new bars.MultiBar(
      { stream: this.#o.stderr, hideCursor: true, fps: 10, clearOnComplete: false, barsize },
      bars.Presets.shades_classic,
    );
    const name = fit(single ? this.#currentName : 'total', this.#nameWidth);
    this.#total = this.#bars.create(total, 0, { ...this.#payload(0, total), name }, {
      format: '  {name} {bar} {percentage}% | {done} / {size} | {speed} | ETA {left}',
    });
    if (!single && this.#fileCount !== 0 && this.#currentName !== '') {
      this.#file = this.#bars.create(Math.max(1, this.#currentSize), 0, { name: fit(this.#currentName, this.#nameWidth) }, { format: '  {name} {bar} {percentage}%' });
    }
  }

  #payload(bytes: number, total: number): Record<string, string> {
    const speed = this.#rate === null ? null : speedOf(this.#rate);
    return {
      done: formatBytes(bytes),
      size: formatBytes(total),
      speed: speed === null || speed <= 0 ? '...' : `${formatBytes(speed)}/s`,
      left: this.#rate === null ? '?' : formatEta(etaSeconds(this.#rate, total - bytes)),
    };
  }

  #flushJson(): void {
    if (this.#jsonTimer !== null) clearTimeout(this.#jsonTimer);
    this.#jsonTimer = null;
    if (this.#jsonLines.length === 0) return;
    const text = this.#jsonLines.join('');
    this.#jsonLines = [];
    this.#o.stdout.write(text);
  }

  stop(): void {
    this.#flushJson();
    this.#bars?.stop();
    this.#bars = null;
    this.#total = this.#file = null;
  }
}

/** A name in exactly `width` columns: padded, or its end kept after "...". */
function fit(name: string, width: number): string {
  const safe = safeForTerminal(name);
  return safe.length <= width ? safe.padEnd(width) : `...${safe.slice(-(width - 3))}`;
}

/**
 * Call when a prompt ends without an answer (Ctrl-C, Ctrl-D): the cursor is still after the
 * question, so the error line that follows would land on it. Every prompt of the CLI does this.
 */
export function endPromptLine(output: NodeJS.WritableStream): void {
  output.write('\n');
}

/** Ask a yes/no question on the terminal; default no. An abort of `signal` ends it as a cancel. */
export async function confirm(question: string, input: NodeJS.ReadStream, output: NodeJS.WriteStream, signal: AbortSignal): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input, output });
  try {
    const answer = await rl.question(`${question} [y/N] `, { signal });
    return /^y(es)?$/i.test(answer.trim());
  } catch (e) {
    endPromptLine(output);
    if (signal.aborted || (e as Error).name === 'AbortError') throw new TscCrocError('ERR_CANCELLED', 'cancelled');
    throw e;
  } finally {
    rl.close();
  }
}
