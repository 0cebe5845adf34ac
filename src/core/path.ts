/**
 * Safety of names received from the other side, before they touch the disk.
 *
 * A received path is relative and '/'-separated. Refused: empty names or segments, absolute
 * paths, '.' and '..', backslashes, drive letters, NUL and every control character (C0, DEL,
 * C1: the ESC of a terminal escape sequence among them), Unicode bidi and invisible format
 * controls that make a name display as another, and ill-formed Unicode. The file-system side
 * (src/transfer/file-sink.ts) additionally refuses to follow symlinks out of the output folder.
 */
import { TscCrocError } from './errors.js';
import { utf8Length } from './utf8.js';

export const MAX_PATH_BYTES = 4096;
/**
 * Names that begin with this are the recipient's own bookkeeping (partial files, chunk hashes,
 * resume journals, src/transfer/file-sink.ts): never received, never sent, so that a sender
 * cannot plant or overwrite the state a later run trusts.
 */
export const RESERVED_PREFIX = '.tsc-croc-';

/**
 * A name a case-insensitive file system (macOS, exFAT, NTFS, casefold ext4) would take for a
 * reserved one: compared after compatibility normalization (ſ → s, K → K) and lowercasing.
 */
export function isReserved(segment: string): boolean {
  return segment.normalize('NFKC').toLowerCase().startsWith(RESERVED_PREFIX);
}
export const MAX_SEGMENT_BYTES = 255;

// C0 controls, DEL, C1 controls; bidi embeddings/overrides/isolates; zero-width and other format characters.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/u;
const DRIVE = /^[a-zA-Z]:/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function unsafe(why: string): never {
  throw new TscCrocError('ERR_UNSAFE_PATH', displayName(`refused a file name from the sender: ${why}`));
}

/** Check a received relative path; returns its segments. Error text never echoes raw control characters. */
export function checkRelativePath(path: string): string[] {
  if (typeof path !== 'string' || path.length === 0) unsafe('empty name');
  if (LONE_SURROGATE.test(path)) unsafe('ill-formed Unicode');
  if (utf8Length(path) > MAX_PATH_BYTES) unsafe(`longer than ${MAX_PATH_BYTES} bytes`);
  if (FORBIDDEN.test(path)) unsafe(`it contains control or invisible characters (${JSON.stringify(path).slice(0, 80)})`);
  if (path.includes('\\')) unsafe(`backslash in ${JSON.stringify(path)}`);
  if (path.startsWith('/')) unsafe(`absolute path ${JSON.stringify(path)}`);
  if (DRIVE.test(path)) unsafe(`drive letter in ${JSON.stringify(path)}`);
  const segments = path.split('/');
  for (const s of segments) {
    if (s.length === 0) unsafe(`empty path segment in ${JSON.stringify(path)}`);
    if (s === '.' || s === '..') unsafe(`'${s}' in ${JSON.stringify(path)}`);
    if (utf8Length(s) > MAX_SEGMENT_BYTES) unsafe(`a path segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    if (isReserved(s)) unsafe(`names beginning with ${RESERVED_PREFIX} are reserved for partial transfers`);
  }
  return segments;
}

/** A name safe to show on a terminal: control and format characters replaced by U+FFFD. */
export function displayName(name: string): string {
  return name.replace(new RegExp(FORBIDDEN.source, 'gu'), '\ufffd');
}
