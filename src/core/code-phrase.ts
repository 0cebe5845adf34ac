/**
 * Code phrases: `<channel>-<word>-<word>-<word>`.
 *
 * The channel is public (the relay sees it); only the words are the PAKE secret. Words come
 * from the BIP-39 English list (2048 words, each identified by its first four letters), drawn
 * with a CSPRNG: three words carry 33 bits, which SPAKE2 turns into one online guess per
 * attempt. Users may type a code in any case, with spaces or dashes, and shorten any list
 * word to its 4-letter prefix.
 */
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { TscCrocError } from './errors.js';
import { fillRandom } from './platform.js';
import { CHANNEL_PATTERN } from './relay-api.js';

export const DEFAULT_WORD_COUNT = 3;
/** Shortest custom secret accepted (characters, dashes excluded). */
export const MIN_SECRET_CHARS = 6;
const MAX_CODE_CHARS = 200;
const PREFIX = 4;

const byPrefix = new Map<string, string>(wordlist.map((w) => [w.slice(0, PREFIX), w]));
const words = new Set<string>(wordlist);
const CHANNEL_RE = new RegExp(CHANNEL_PATTERN);
const PART_RE = /^[a-z0-9]{1,64}$/;

export interface CodePhrase {
  channel: string;
  /** The secret part, canonical: full list words (or custom parts) joined by '-'. */
  secret: string;
}

/** Pick `count` random list words as the secret. `randomIndex` is injectable for tests. */
export function generateSecret(
  count = DEFAULT_WORD_COUNT,
  randomIndex: (max: number) => number = randomBelow,
): string {
  if (!Number.isSafeInteger(count) || count < 2 || count > 16) throw new RangeError('count must be in [2, 16]');
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(wordlist[randomIndex(wordlist.length)]!);
  return out.join('-');
}

/** A uniform integer in [0, max) from the platform's CSPRNG (platform.ts: node:crypto, or Web Crypto in a browser), by rejection. */
export function randomBelow(max: number): number {
  if (!Number.isSafeInteger(max) || max < 1 || max > 2 ** 32) throw new RangeError('max must be in [1, 2^32]');
  const limit = 2 ** 32 - (2 ** 32 % max);
  const word = new Uint32Array(1);
  for (;;) {
    fillRandom(word);
    if (word[0]! < limit) return word[0]! % max;
  }
}

export function formatCode(code: CodePhrase): string {
  return `${code.channel}-${code.secret}`;
}

/** Expand one typed word: an exact list word, a unique prefix of one, or a custom part. */
function canonicalPart(part: string): string {
  if (words.has(part)) return part;
  if (part.length >= PREFIX) {
    const full = byPrefix.get(part.slice(0, PREFIX));
    if (full !== undefined && full.startsWith(part)) return full;
  }
  return part;
}

/**
 * Parse what a user typed. Case-insensitive; spaces, dashes and underscores all separate.
 * Throws ERR_BAD_CODE_FORMAT with a message that never repeats the secret.
 */
export function parseCode(input: string): CodePhrase {
  if (typeof input !== 'string' || input.length > MAX_CODE_CHARS)
    throw new TscCrocError('ERR_BAD_CODE_FORMAT', `a code is at most ${MAX_CODE_CHARS} characters`);
  const parts = input.trim().toLowerCase().split(/[\s\-_]+/).filter((p) => p.length > 0);
  const [channel, ...rest] = parts;
  if (channel === undefined || !CHANNEL_RE.test(channel))
    throw new TscCrocError('ERR_BAD_CODE_FORMAT', 'a code starts with its channel (letters and digits), like 7-word-word-word');
  if (rest.length === 0)
    throw new TscCrocError('ERR_BAD_CODE_FORMAT', 'the code has no secret words after the channel, like 7-word-word-word');
  if (!rest.every((p) => PART_RE.test(p)))
    throw new TscCrocError('ERR_BAD_CODE_FORMAT', 'code words may contain only letters and digits');
  const secret = rest.map(canonicalPart).join('-');
  if (secret.replaceAll('-', '').length < MIN_SECRET_CHARS)
    throw new TscCrocError('ERR_BAD_CODE_FORMAT', `the secret part of a code needs at least ${MIN_SECRET_CHARS} characters`);
  return { channel, secret };
}
