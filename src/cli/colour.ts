/**
 * Whether, and how, the CLI colours what it writes: decided in this one place, per stream (stderr's
 * terminal for stderr lines, stdout's for stdout), from the environment:
 *
 * - `NO_COLOR` set and not empty (https://no-color.org): never, whatever else is set;
 * - else `FORCE_COLOR` set and not empty: always, even into a pipe, unless it is `0` or `false`
 *   (then never);
 * - else only on a terminal whose TERM is not `dumb`.
 *
 * `--json` output is never coloured (the caller does not ask).
 */
import picocolors from 'picocolors';

export type Colours = ReturnType<typeof picocolors.createColors>;

/** What colourWanted reads of a stream. */
export interface MaybeTerminal {
  isTTY?: boolean | undefined;
}

/** Whether lines written to `stream` get colour (rules above). */
export function colourWanted(stream: MaybeTerminal, env: NodeJS.ProcessEnv): boolean {
  if ((env.NO_COLOR ?? '') !== '') return false;
  const force = env.FORCE_COLOR ?? '';
  if (force !== '') return force !== '0' && force.toLowerCase() !== 'false';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/** The colour functions for `stream`: each one returns its text unchanged when colour is not wanted. */
export function coloursFor(stream: MaybeTerminal, env: NodeJS.ProcessEnv): Colours {
  return picocolors.createColors(colourWanted(stream, env));
}

/**
 * A line the CLI writes about a failure or a doubt: its `tsc-croc:` prefix (or `tsc-croc relay:`)
 * red for an error, yellow for a warning (`tsc-croc: warning: ...`). The text is not changed.
 */
export function paintMessage(line: string, c: Colours): string {
  const m = /^(tsc-croc(?: relay)?:)( warning:)?/.exec(line);
  if (m === null) return line;
  if (m[2] !== undefined) return c.yellow(m[0]) + line.slice(m[0].length);
  return c.red(m[1]!) + line.slice(m[1]!.length);
}
