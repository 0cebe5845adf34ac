/**
 * Secrets given as arguments (the code of `receive CODE` or `send --code CODE`, a relay password)
 * are readable by every local user in /proc/PID/cmdline and `ps` for as long as they stay in the
 * process's argument area (croc's CVE-2023-43621). Setting process.title makes libuv overwrite
 * that whole area (all of argv, not only argv[0]: measured on Linux, Node 20), so the entry point
 * calls hideSecretsFromProcessList() as the first thing it does; process.argv (Node's own copy)
 * keeps the real arguments. The window before that call is documented in README.md and
 * docs/protocol.md section 8; the prompt and TSC_CROC_SECRET have none.
 *
 * Imports nothing: it runs before anything else is loaded.
 */

/** What a hidden argument is shown as. */
export const HIDDEN = '***';

/** Options whose value is a secret, in any command. */
const SECRET_OPTIONS = new Set(['--code', '--relay-password', '--password']);
/** Options of `receive` that take a value (their value is not the code). */
const RECEIVE_VALUE_OPTIONS = new Set(['--relay', '--out', '--reconnect', '--stall', '--interface', '--wait']);
/** The command names; any other first word is taken for a code (`tsc-croc CODE` receives). */
const COMMANDS = new Set(['send', 'receive', 'relay', 'completion', 'help']);

/**
 * The command line with secrets replaced by HIDDEN, or null when it holds none. `argv` is
 * process.argv: [node, script, ...]. The command is the first word that is not an option (nor a
 * `receive` option's value); a first word that is no command name is the code of `tsc-croc CODE`
 * (croc's habit) and is hidden. For `receive`, every positional argument is taken for the code
 * (more is hidden rather than less).
 */
export function maskedCommandLine(argv: readonly string[]): string[] | null {
  const out = argv.slice();
  let command: string | undefined;
  let masked = false;
  let positional = false; // after `--`
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (!positional && a === '--') {
      positional = true;
      continue;
    }
    if (!positional && a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a : a.slice(0, eq);
      if (SECRET_OPTIONS.has(name)) {
        if (eq >= 0) out[i] = `${name}=${HIDDEN}`;
        else if (i + 1 < argv.length) out[++i] = HIDDEN;
        masked = true;
      } else if (eq < 0 && (command === undefined || command === 'receive') && RECEIVE_VALUE_OPTIONS.has(name)) i++; // its value
      continue;
    }
    if (!positional && a.startsWith('-') && a.length > 1) continue; // a short flag (-y)
    if (command === undefined && !positional && COMMANDS.has(a)) {
      command = a;
      continue;
    }
    command ??= 'receive'; // `tsc-croc [options] CODE`
    if (command === 'receive') {
      out[i] = HIDDEN;
      masked = true;
    }
  }
  return masked ? out : null;
}

/** Rewrite the process's command line (what /proc/PID/cmdline and ps show) without its secrets. */
export function hideSecretsFromProcessList(): void {
  // (on Windows process.title is the console window's title, and other users cannot read a process's command line)
  if (process.platform === 'win32') return;
  const masked = maskedCommandLine(process.argv);
  if (masked === null) return;
  try {
    process.title = masked.join(' ');
  } catch {
    // no title support here (never on Linux); the docs say to prefer the prompt or TSC_CROC_SECRET
  }
}
