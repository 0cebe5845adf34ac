/**
 * The relay's log lines for a person at a terminal (`tsc-croc relay --log-format pretty`): one
 * compact line per event, from the JSON line pino wrote, e.g.
 *
 *   09:41:07 INFO  stapled channel=4173 senderAddress=10.0.0.5 recipientAddress=10.0.0.9
 *
 * The time is the machine's local time of day; pino's pid, hostname and format version are left
 * out; every other field is shown as key=value, in pino's order. Nothing is added that the JSON
 * line does not hold (the redacted fields stay "[redacted]"), and the text is made harmless for a
 * terminal: control, bidi and zero-width characters in names or values are written as \u escapes.
 * An error shows its type and message (the stack is in the JSON format).
 */

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** pino's own fields, shown in their own way or not at all. */
const OWN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'v']);
/** A value shown as it is; anything else is quoted. */
const BARE = /^[\w.:/@+\-[\]]+$/u;
/** What a terminal must not get raw: JSON.stringify escapes C0 controls, this the rest. */
const UNSAFE = /[\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/gu;

export interface PrettyOptions {
  /** ANSI colour for the level, time and field names (default none). */
  colour?: boolean | undefined;
  /** Show the time in UTC instead of the local time of day (tests). */
  utc?: boolean | undefined;
}

function escapeRest(s: string): string {
  return s.replace(UNSAFE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A string for the line: bare when it is a plain word, else JSON-quoted; never a raw control character. */
function text(s: string): string {
  return BARE.test(s) ? s : escapeRest(JSON.stringify(s));
}

function value(key: string, v: unknown): string {
  if (typeof v === 'string') return text(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (key === 'err' && typeof v === 'object' && v !== null) {
    const e = v as { type?: unknown; message?: unknown; code?: unknown };
    const parts = [typeof e.type === 'string' ? e.type : 'Error', typeof e.message === 'string' ? e.message : ''];
    return text(`${parts[0]}: ${parts[1]}${typeof e.code === 'string' ? ` (${e.code})` : ''}`);
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(v);
  } catch {
    json = undefined;
  }
  return escapeRest(json ?? String(v));
}

function clock(ms: number, utc: boolean): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '--:--:--';
  const parts = utc ? [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()] : [d.getHours(), d.getMinutes(), d.getSeconds()];
  return parts.map((n) => String(n).padStart(2, '0')).join(':');
}

const ansi = (code: string, s: string, on: boolean): string => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

/** One pino JSON line (with or without its newline) as a pretty line, ending in a newline. */
export function prettyLogLine(line: string, o: PrettyOptions = {}): string {
  const on = o.colour === true;
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    rec = undefined;
  }
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return `${escapeRest(JSON.stringify(line.replace(/\n$/, '')).slice(1, -1))}\n`;
  const r = rec as Record<string, unknown>;
  const level = typeof r.level === 'number' ? (LEVELS[r.level] ?? `L${r.level}`) : typeof r.level === 'string' ? text(r.level).toUpperCase() : 'INFO';
  const levelColour = level === 'INFO' ? '32' : level === 'WARN' ? '33' : level === 'ERROR' || level === 'FATAL' ? '31' : '2';
  const out = [
    ansi('2', typeof r.time === 'number' ? clock(r.time, o.utc === true) : '--:--:--', on),
    ansi(levelColour, level.padEnd(5), on),
  ];
  if (typeof r.msg === 'string') out.push(escapeRest(JSON.stringify(r.msg).slice(1, -1)));
  for (const [k, v] of Object.entries(r)) {
    if (OWN.has(k) || v === undefined) continue;
    out.push(`${ansi('2', `${text(k)}=`, on)}${value(k, v)}`);
  }
  return `${out.join(' ')}\n`;
}
