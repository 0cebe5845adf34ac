/**
 * Consent per existing name, on the terminal (as croc asks per file): for each offered name that
 * is already in the output folder, in offer order,
 *
 *   photo.jpg already exists here: replace it? [y/n/a/q]
 *
 * y replaces it, n keeps ours (the sender leaves it out), a replaces it and all the rest,
 * q declines the whole transfer. Ctrl-C (or an abort of the signal) cancels, on its own line.
 */
import { TscCrocError } from '../core/errors.js';
import type { OverwriteAnswer } from '../transfer/receive.js';

/** What one answer means; null: not an answer (asked again). */
export function parseConsent(answer: string): 'replace' | 'skip' | 'all' | 'quit' | null {
  const a = answer.trim().toLowerCase();
  if (a === 'y' || a === 'yes') return 'replace';
  if (a === 'n' || a === 'no') return 'skip';
  if (a === 'a' || a === 'all') return 'all';
  if (a === 'q' || a === 'quit') return 'quit';
  return null;
}

const HELP = 'Answer y (replace it), n (keep yours: it is not received), a (replace it and all the rest) or q (receive nothing).\n';

/**
 * Ask about each existing name (display-safe, as OfferInfo.existing gives them). Resolves with
 * the names to replace and to keep; q or Ctrl-D declines (ERR_DECLINED), Ctrl-C or an abort of
 * `signal` cancels (ERR_CANCELLED).
 */
export async function askEachExisting(existing: readonly string[], input: NodeJS.ReadStream, output: NodeJS.WriteStream, signal: AbortSignal): Promise<OverwriteAnswer> {
  const { createInterface } = await import('node:readline');
  if (signal.aborted) throw new TscCrocError('ERR_CANCELLED', 'cancelled');
  const rl = createInterface({ input, output, terminal: true, historySize: 0 });
  const replace: string[] = [];
  const skip: string[] = [];
  let settled = false;
  let onAbort = () => {};
  try {
    await new Promise<void>((resolve, reject) => {
      /** Ends the prompt; `midLine`: it stopped on the prompt's line, left first so the error gets a line of its own. */
      const end = (e: TscCrocError | null, midLine = false) => {
        if (settled) return;
        settled = true;
        if (midLine) output.write('\n');
        if (e === null) resolve();
        else reject(e);
      };
      onAbort = () => end(new TscCrocError('ERR_CANCELLED', 'cancelled'), true);
      signal.addEventListener('abort', onAbort, { once: true });
      rl.on('SIGINT', () => end(new TscCrocError('ERR_CANCELLED', 'cancelled'), true));
      rl.on('close', () => end(new TscCrocError('ERR_DECLINED', 'you declined the transfer (no answer)'), true));
      let i = 0;
      const ask = () => {
        if (i === existing.length) return end(null);
        rl.question(`${existing[i]} already exists here: replace it? [y/n/a/q] `, (answer) => {
          const what = parseConsent(answer);
          if (what === null) output.write(HELP);
          else if (what === 'quit') return end(new TscCrocError('ERR_DECLINED', 'you declined the transfer'));
          else if (what === 'all') {
            replace.push(...existing.slice(i));
            i = existing.length;
          } else (what === 'replace' ? replace : skip).push(existing[i++]!);
          ask();
        });
      };
      ask();
    });
  } finally {
    settled = true; // closing the interface below is not an answer
    signal.removeEventListener('abort', onAbort);
    rl.close();
  }
  return { replace, skip };
}
