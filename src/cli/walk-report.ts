/** What the sender's terminal says about its walk: a long walk's count, and what it left out. */
import type { TransferEvent } from '../transfer/events.js';

/** Unreadable things listed one per line, at most; then only their count. */
const LISTED_UNREADABLE = 20;

const REASON_TEXT = {
  symlink: 'symlinks inside folders (never followed)',
  special: 'special files or names the recipient would refuse',
  'too-deep': 'folders nested too deep',
} as const;

function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** The stderr lines for a 'reading' or 'left-out' event (display-safe paths already). */
export function walkLines(e: Extract<TransferEvent, { type: 'reading' | 'left-out' }>): string[] {
  if (e.type === 'reading') return [e.done ? `Read ${count(e.entries)} files and folders.` : `Reading the files to send: ${count(e.entries)} so far...`];
  if (e.reason === 'unreadable') {
    const lines = e.paths.slice(0, LISTED_UNREADABLE).map((p) => `tsc-croc: warning: left out, cannot be read: ${p}`);
    lines.push(`tsc-croc: warning: left out ${e.count === 1 ? '1 file or folder' : `${count(e.count)} files or folders`} that cannot be read (--skip-unreadable)`);
    return lines;
  }
  const shown = e.paths.slice(0, 3).join(', ');
  return [`Left out ${count(e.count)} ${REASON_TEXT[e.reason]}: ${shown}${e.count > 3 ? ', ...' : ''}`];
}
