/** Terminal output: numbered stages, a progress bar, a yes/no prompt, --json events. */
import type cliProgress from 'cli-progress';
import { TscCrocError } from '../core/errors.js';
import type { OfferInfo, Stage, TransferEvent } from '../transfer/events.js';
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

const STAGE_TEXT: Record<Stage, string> = {
  connecting: 'Connecting to the relay',
  securing: 'Securing the connection (SPAKE2)',
  waiting: 'Waiting for the other side',
  checking: 'Checking what the recipient already has',
  transferring: 'Transferring',
};

export interface UiOptions {
  json: boolean;
  progress: boolean;
  stderr: NodeJS.WriteStream;
  stdout: NodeJS.WriteStream;
  stages: Stage[];
}

/** Turns transfer events into what the user sees; everything but results goes to stderr. */
/** Files listed one per line when there is no progress bar; beyond this, only the total. */
const LISTED_FILES = 20;
/** Per-file --json events are written together at most this often... */
const JSON_FLUSH_MS = 50;
/** ...or once this many are waiting. */
const JSON_BATCH_LINES = 512;

export class TransferUi {
  readonly #o: UiOptions;
  #bars: cliProgress.MultiBar | null = null;
  #total: cliProgress.SingleBar | null = null;
  /** The current file, shown from the second file on. */
  #file: cliProgress.SingleBar | null = null;
  #files = 0;
  #fileStart = 0;
  #bytes = 0;
  #started = 0;
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

  onEvent = (e: TransferEvent): void => {
    if (this.#o.json) {
      if (e.type === 'progress') {
        const now = Date.now();
        if (now - this.#lastProgress < 200 && e.bytes !== e.totalBytes) return;
        this.#lastProgress = now;
      }
      this.#jsonLines.push(`${JSON.stringify({ event: e.type, ...e, type: undefined })}\n`);
      if (e.type !== 'file-start' && e.type !== 'file-done') this.#flushJson();
      else if (this.#jsonLines.length >= JSON_BATCH_LINES) this.#flushJson();
      else this.#jsonTimer ??= setTimeout(() => this.#flushJson(), JSON_FLUSH_MS);
      return;
    }
    switch (e.type) {
      case 'stage': {
        const i = this.#o.stages.indexOf(e.stage);
        if (i >= 0) this.info(`[${i + 1}/${this.#o.stages.length}] ${STAGE_TEXT[e.stage]}...`);
        else if (e.stage === 'checking') this.info(`${STAGE_TEXT[e.stage]}...`);
        break;
      }
      case 'reconnecting':
        this.info(`Connection lost (${e.reason}); reconnecting for up to ${Math.max(0, Math.round((e.untilMs - Date.now()) / 1000))} s...`);
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
        this.info(`Someone tried a wrong code (${e.attempt} of ${e.maxAttempts})${e.attempt < e.maxAttempts ? ': still waiting for the right one' : ''}.`);
        break;
      case 'file-start':
        if (e.offset > 0) this.info(`  resuming ${e.path} at ${formatBytes(e.offset)} of ${formatBytes(e.size)}`);
        this.#files++;
        this.#fileStart = this.#bytes;
        if (this.#bars && this.#files === 2) this.#file = this.#bars.create(1, 0, { name: '' }, { format: '  {name} {bar} {percentage}%' });
        this.#file?.setTotal(Math.max(1, e.size));
        this.#file?.update(0, { name: shorten(e.path, 40) });
        break;
      case 'progress':
        this.#bytes = e.bytes;
        if (!this.#bars && this.#barsModule && e.totalBytes > 0) this.#startBars(this.#barsModule, e.totalBytes);
        this.#total?.update(e.bytes, this.#payload(e.bytes, e.totalBytes));
        this.#file?.update(e.bytes - this.#fileStart);
        break;
      case 'file-done':
        if (!this.#bars && this.#listed < LISTED_FILES) {
          this.#listed++;
          this.info(`  ${e.path} (${formatBytes(e.size)})`);
        }
        break;
      case 'done':
        this.stop();
        this.info(`Done: ${e.files === 1 ? '1 file' : `${e.files} files`}, ${formatBytes(e.bytes)}${e.resumedBytes > 0 ? ` (${formatBytes(e.resumedBytes)} of it resumed from an interrupted transfer)` : ''}.`);
        break;
      default:
        break;
    }
  };

  #startBars(bars: typeof cliProgress, total: number): void {
    this.#bars = new bars.MultiBar(
      { stream: this.#o.stderr, hideCursor: true, etaBuffer: 50, fps: 10, clearOnComplete: false },
      bars.Presets.shades_classic,
    );
    this.#started = Date.now();
    this.#total = this.#bars.create(total, 0, this.#payload(0, total), {
      format: '  total {bar} {percentage}% | {done} / {size} | {speed} | ETA {eta_formatted}',
    });
  }

  #payload(bytes: number, total: number): Record<string, string> {
    const secs = (Date.now() - this.#started) / 1000;
    return { done: formatBytes(bytes), size: formatBytes(total), speed: secs > 0 ? `${formatBytes(bytes / secs)}/s` : '' };
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

function shorten(name: string, max: number): string {
  return name.length <= max ? name.padEnd(max) : `...${name.slice(-(max - 3))}`;
}

/** Ask a yes/no question on the terminal; default no. An abort of `signal` ends it as a cancel. */
export async function confirm(question: string, input: NodeJS.ReadStream, output: NodeJS.WriteStream, signal: AbortSignal): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input, output });
  try {
    const answer = await rl.question(`${question} [y/N] `, { signal });
    return /^y(es)?$/i.test(answer.trim());
  } catch (e) {
    if (signal.aborted || (e as Error).name === 'AbortError') throw new TscCrocError('ERR_CANCELLED', 'cancelled');
    throw e;
  } finally {
    rl.close();
  }
}
