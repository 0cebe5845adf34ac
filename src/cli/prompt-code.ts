/**
 * Asking for the code on the terminal (`tsc-croc receive` with no code): what is typed is echoed,
 * as magic-wormhole does, and Tab completes a code word from its first letters. A code typed here
 * never appears in a process list, unlike one given as an argument.
 */
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { TscCrocError } from '../core/errors.js';
import { endPromptLine } from './ui.js';

/**
 * readline's completer: the word being typed (after the channel and the last separator) against
 * the code word list. One match completes it and adds the dash that separates the next word;
 * several are listed (readline then completes their common prefix). The channel is not completed.
 */
export function completeCodeWord(line: string): [string[], string] {
  const last = /[^\s\-_]*$/.exec(line)![0];
  const before = line.slice(0, line.length - last.length);
  if (last === '' || !/[\s\-_]/.test(before)) return [[], last];
  const lower = last.toLowerCase();
  const hits = wordlist.filter((w) => w.startsWith(lower));
  return [hits.length === 1 ? [`${hits[0]}-`] : hits, last];
}

/** Ask for the code; resolves with what was typed (not yet checked). Ctrl-C cancels, Ctrl-D gives up. */
export async function promptCode(input: NodeJS.ReadStream, output: NodeJS.WriteStream): Promise<string> {
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input, output, terminal: true, completer: completeCodeWord, historySize: 0 });
  try {
    return await new Promise<string>((resolve, reject) => {
      let answered = false;
      // without an answer, the error line that follows goes on a line of its own, not after the question
      const giveUp = (e: TscCrocError) => {
        if (answered) return;
        answered = true;
        endPromptLine(output);
        reject(e);
      };
      rl.on('SIGINT', () => giveUp(new TscCrocError('ERR_CANCELLED', 'cancelled')));
      rl.on('close', () => giveUp(new TscCrocError('ERR_INVALID_ARGUMENT', 'no code was typed')));
      rl.question('Enter the code the sender shows (Tab completes a word): ', (answer) => {
        answered = true;
        const code = answer.trim();
        if (code === '') reject(new TscCrocError('ERR_INVALID_ARGUMENT', 'no code was typed'));
        else resolve(code);
      });
    });
  } finally {
    rl.close();
  }
}
