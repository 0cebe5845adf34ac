/**
 * The user's remembered settings (`--remember`): a JSON file in the user's config folder
 * ($XDG_CONFIG_HOME/tsc-croc/config.json, else ~/.config/tsc-croc/config.json). Only the relay
 * address is kept; never a code or a password.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { TscCrocError } from '../core/errors.js';

export interface Settings {
  relay?: string;
}

export function settingsPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.length > 0 ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'tsc-croc', 'config.json');
}

/** The remembered settings; a missing or unreadable file is no settings (with a warning for the latter). */
export async function loadSettings(env: NodeJS.ProcessEnv, warn: (line: string) => void): Promise<Settings> {
  let text: string;
  try {
    text = await readFile(settingsPath(env), 'utf8');
  } catch {
    return {};
  }
  try {
    const o = JSON.parse(text) as unknown;
    const relay = (o as { relay?: unknown } | null)?.relay;
    return typeof relay === 'string' && relay.length > 0 && relay.length < 2048 ? { relay } : {};
  } catch {
    warn(`tsc-croc: ignoring ${settingsPath(env)}: not valid JSON`);
    return {};
  }
}

/** Remember the relay: written to a temporary file, then renamed into place. */
export async function rememberRelay(env: NodeJS.ProcessEnv, relay: string): Promise<string> {
  const path = settingsPath(env);
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ relay } satisfies Settings, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, path);
  } catch (e) {
    throw new TscCrocError('ERR_IO', `cannot save ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return path;
}
