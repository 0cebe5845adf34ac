/**
 * The commands. A thin layer over the library (src/index.ts): parse options, wire the UI,
 * map errors to exit codes (src/cli/exit.ts). Defaults may come from TSC_CROC_* variables.
 */
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { TscCrocError } from '../core/errors.js';
import { CURVES, DEFAULT_CURVE, type CurveName } from '../core/relay-api.js';
import { RELAY_FLAGS, relayConfig, type RelayCliFlags } from '../relay/config.js';
import { colourWanted, coloursFor, paintMessage } from './colour.js';
import { EXIT, reportError } from './exit.js';
import { loadSettings, rememberRelay } from './settings.js';
import { parseRelayUrl } from '../transfer/relay-client.js';
import { TransferUi, confirm, describeOffer, safeForTerminal } from './ui.js';
import { VERSION } from './version.js';

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  env: NodeJS.ProcessEnv;
}


/** --interface / TSC_CROC_INTERFACES: a comma- or space-separated list; undefined when not given (every interface). */
function interfacesFrom(o: { interface?: string }, io: CliIo): string[] | undefined {
  const v = o.interface ?? io.env.TSC_CROC_INTERFACES;
  if (v === undefined || v.trim() === '') return undefined;
  return v.split(/[\s,]+/).filter((n) => n.length > 0);
}

/** --local: only the LAN; --no-local: never; neither: the LAN as well as a configured relay. */
function lanMode(local: boolean | undefined): 'auto' | 'only' | 'off' {
  return local === true ? 'only' : local === false ? 'off' : 'auto';
}

/**
 * The configured relay: --relay, else TSC_CROC_RELAY, else the remembered one; none: the local
 * network. With --remember, the given one is saved for next time.
 */
async function relayFrom(o: { relay?: string; remember?: boolean }, io: CliIo): Promise<string | undefined> {
  if (o.remember) {
    const relay = o.relay ?? io.env.TSC_CROC_RELAY;
    if (relay === undefined) throw new TscCrocError('ERR_INVALID_ARGUMENT', '--remember saves the relay given with --relay (or TSC_CROC_RELAY): give one');
    parseRelayUrl(relay); // refuse a malformed address before saving it
    io.stderr.write(`Remembered the relay ${relay} in ${await rememberRelay(io.env, relay)}\n`);
    return relay;
  }
  return o.relay ?? io.env.TSC_CROC_RELAY ?? (await loadSettings(io.env, (l) => io.stderr.write(`${l}\n`))).relay;
}

/**
 * A code given as an argument was readable by every user of this machine until the entry point
 * hid it (src/cli/hide-secrets.ts; README "Keeping the code secret" gives the window): say so.
 */
function warnArgumentCode(io: CliIo): void {
  io.stderr.write(`${paintMessage('tsc-croc: warning: a code given as an argument is visible to other users of this machine for a moment (process list); prefer the prompt or TSC_CROC_SECRET', coloursFor(io.stderr, io.env))}\n`);
}

/** Cancel on the first Ctrl-C / SIGTERM; the second one exits at once. */
function cancelOnSignals(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const handler = () => {
    if (ac.signal.aborted) process.exit(EXIT.DECLINED_OR_CANCELLED);
    ac.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

/** Names for one line: the first ten, then how many more. */
function listNames(names: readonly string[]): string {
  return names.slice(0, 10).map(safeForTerminal).join(', ') + (names.length > 10 ? `, and ${names.length - 10} more` : '');
}

/** A number of seconds from the command line: 0 to one day, fractions allowed. */
function seconds(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 86_400) throw new InvalidArgumentError('a number of seconds from 0 to 86400');
  return n;
}

export function buildProgram(io: CliIo): Command {
  const program = new Command('tsc-croc')
    .description('Send files between two computers, end-to-end encrypted with a short code (SPAKE2 + AES-256-GCM).')
    .version(VERSION)
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // a usage error: commander's one line (and its "Did you mean" guess), then the hint below, never the whole help
      outputError: (s, write) => write(`tsc-croc: ${s.replace(/\n\(Did you mean ([^)\n]*)\)/, ' (did you mean $1)')}`),
    })
    .exitOverride();

  const relayOpt = () => new Option('--relay <url>', 'relay address, e.g. http://relay.example:9009 (env: TSC_CROC_RELAY); without one, the local network');
  const relayPasswordOpt = () =>
    new Option('--relay-password <password>', "the relay's password, if it has one; visible in process lists, prefer env TSC_CROC_RELAY_PASSWORD");
  const outputOpts = (c: Command) =>
    c
      .option('--json', 'print one JSON event per line on stdout (for scripts)')
      .option('--no-progress', 'no progress bar')
      .option('--remember', 'save the relay given with --relay as the default for next time')
      .option('--local', 'the local network only, even with a relay configured')
      .option('--no-local', 'never the local network: only the configured relay')
      .option('--interface <names>', 'the local network only through these interfaces (names or IPv4 addresses, comma-separated, e.g. lo or eth0,wlan0; env: TSC_CROC_INTERFACES); default: all')
      .addOption(
        new Option('--reconnect <seconds>', 'after the connection drops mid-transfer, keep trying to reach the other side this long (0: never)')
          .default(120)
          .argParser(seconds),
      )
      .addOption(
        new Option('--stall <seconds>', 'call the connection stalled when nothing arrives from the other side this long (at least 45: the other side sends a keepalive every 30 s)')
          .default(90)
          .argParser((v) => {
            const n = seconds(v);
            if (n < 45) throw new InvalidArgumentError('at least 45 seconds');
            return n;
          }),
      );

  outputOpts(
    program
      .command('send')
      .description('send files and folders, a text, or what is piped in (`tar c dir | tsc-croc send`); prints a code for the other side')
      .argument('[paths...]', 'files and folders to send (folders recursively, empty ones too)')
      .option('--text <message>', 'send a text message instead of files')
      .option('--qr', "also show a QR code (for a phone camera): the relay page's link when it serves one, else the receive command")
      .addOption(relayOpt())
      .addOption(relayPasswordOpt())
      .option('--code <code>', 'use this code (<channel>-<words>) instead of a random one; visible to other users in process lists, prefer env TSC_CROC_SECRET')
      .option('--exclude <glob>', 'leave out what matches, like a .gitignore line (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
      .option('--git', 'leave out what .gitignore files ignore (nested ones too), and .git folders')
      .option('--skip-unreadable', 'leave out (and list) files and folders that cannot be read, instead of stopping before the code is shown')
      .addOption(new Option('--curve <curve>', 'SPAKE2 group').choices([...CURVES]).default(DEFAULT_CURVE)),
  ).action(async (files: string[], o: { relay?: string; relayPassword?: string; code?: string; text?: string; qr?: boolean; exclude: string[]; git?: boolean; skipUnreadable?: boolean; curve: CurveName; json?: boolean; progress: boolean; local?: boolean; interface?: string; remember?: boolean; reconnect: number; stall: number }) => {
    const relay = await relayFrom(o, io);
    if (o.code !== undefined) warnArgumentCode(io);
    // with no paths and no text, what is piped in is sent, as it is read
    const piped = files.length === 0 && o.text === undefined;
    if (piped && io.stdin.isTTY)
      throw new TscCrocError('ERR_INVALID_ARGUMENT', 'nothing to send: give files or folders, --text, or pipe data in (e.g. tar c dir | tsc-croc send)');
    const ui = new TransferUi({ json: !!o.json, progress: o.progress && !!io.stderr.isTTY, stderr: io.stderr, stdout: io.stdout, env: io.env, role: 'sender', stages: ['connecting', 'waiting', 'securing', 'transferring'] });
    // loaded here, not at start-up: `--version`, `--help` and the other commands never pay for them
    const [{ send }, qr] = await Promise.all([import('../transfer/send.js'), o.qr ? import('uqr') : null]);
    const { signal, dispose } = cancelOnSignals();
    try {
      await send({
        relay,
        relayPassword: o.relayPassword ?? io.env.TSC_CROC_RELAY_PASSWORD,
        lan: lanMode(o.local),
        interfaces: interfacesFrom(o, io),
        ...(piped ? { stream: io.stdin } : o.text !== undefined ? { text: o.text } : { files }),
        exclude: o.exclude,
        git: !!o.git,
        skipUnreadable: !!o.skipUnreadable,
        code: o.code ?? io.env.TSC_CROC_SECRET,
        curve: o.curve,
        timeouts: { reconnectMs: o.reconnect * 1000, stallMs: o.stall * 1000 },
        signal,
        onEvent: (e) => {
          if (e.type === 'skipped' && !o.json) ui.info(`The recipient already has and kept: ${listNames(e.names)}`);
          if (e.type === 'code' && !o.json) {
            ui.showCode(e.code);
            // the code is typed at the prompt (or set in the environment), never given as an argument:
            // other users of that computer would see it in the process list
            const via = relay === undefined ? '' : ` --relay ${relay}`;
            ui.info(
              `On the other computer${relay === undefined ? ' (on this network)' : ''} run:\n  tsc-croc receive${via}\nand type the code; or, in a script:\n  TSC_CROC_SECRET=${e.code} tsc-croc receive${via}` +
                (e.web === undefined ? '' : `\nOr, with only a browser, open:\n  ${e.web}`),
            );
            // with the relay's page, the QR code is its link: a phone camera opens it
            if (qr) ui.info(qr.renderUnicodeCompact(e.web ?? `TSC_CROC_SECRET=${e.code} tsc-croc receive${via}`, { border: 1 }));
          }
          ui.onEvent(e);
        },
      });
    } finally {
      ui.stop();
      dispose();
    }
  });

  outputOpts(
    program
      .command('receive')
      .description('receive files sent with a code')
      .argument('[code]', 'the code the sender shows; better typed at the prompt (or env TSC_CROC_SECRET): an argument is visible to other users for a moment')
      .addOption(relayOpt())
      .addOption(relayPasswordOpt())
      .option('--out <dir>', 'folder to save into', '.')
      .option('-y, --yes', 'accept the offer without asking')
      .option('--overwrite', 'replace files (and write into folders) that already exist; on a terminal you are asked name by name')
      .addOption(new Option('--skip-existing', 'keep what already exists here and receive the rest (the sender is told)').conflicts('overwrite'))
      .option('--stdout', 'write a single offered file to stdout instead of the output folder')
      .addOption(new Option('--wait <seconds>', 'wait this long for a sender that has not started yet (0: fail at once)').default(300).argParser(seconds)),
  ).action(async (codeArg: string | undefined, o: { wait: number; relay?: string; relayPassword?: string; stdout?: boolean; out: string; yes?: boolean; overwrite?: boolean; skipExisting?: boolean; json?: boolean; progress: boolean; local?: boolean; interface?: string; remember?: boolean; reconnect: number; stall: number }) => {
    const relay = await relayFrom(o, io);
    // the code: typed at the prompt (never in a process list), else TSC_CROC_SECRET, else an argument
    if (codeArg !== undefined) warnArgumentCode(io);
    let code = codeArg ?? io.env.TSC_CROC_SECRET;
    if (!code && io.stdin.isTTY) code = await (await import('./prompt-code.js')).promptCode(io.stdin, io.stderr);
    if (!code)
      throw new TscCrocError(
        'ERR_INVALID_ARGUMENT',
        'give the code the sender shows: run tsc-croc receive on a terminal and type it, or set TSC_CROC_SECRET=<code> (not an argument: other users see those)',
      );
    const ui = new TransferUi({ json: !!o.json, progress: o.progress && !!io.stderr.isTTY, stderr: io.stderr, stdout: io.stdout, env: io.env, role: 'recipient', stages: ['connecting', 'securing', 'transferring'] });
    const { receive } = await import('../transfer/receive.js');
    const { signal, dispose } = cancelOnSignals();
    try {
      const result = await receive({
        relay,
        relayPassword: o.relayPassword ?? io.env.TSC_CROC_RELAY_PASSWORD,
        lan: lanMode(o.local),
        interfaces: interfacesFrom(o, io),
        streamTo: io.stdout,
        fileToStream: !!o.stdout,
        code,
        outDir: o.out,
        timeouts: { reconnectMs: o.reconnect * 1000, stallMs: o.stall * 1000, waitForSenderMs: o.wait * 1000 },
        // existing names: all replaced, all kept, or asked about one by one on a terminal
        overwrite: o.overwrite ? true : o.skipExisting ? 'skip' : io.stdin.isTTY && !o.yes ? async (existing) => (await import('./prompt-consent.js')).askEachExisting(existing, io.stdin, io.stderr, signal) : false,
        signal,
        onEvent: ui.onEvent,
        accept: async (offer) => {
          if ((offer.kind === 'stream' || o.stdout) && o.json) throw new TscCrocError('ERR_INVALID_ARGUMENT', 'data written to stdout cannot be received with --json');
          if ((offer.kind === 'stream' || o.stdout) && io.stdout.isTTY)
            throw new TscCrocError('ERR_INVALID_ARGUMENT', 'the data would go to this terminal: redirect it (tsc-croc receive > file) or pipe it');
          if (offer.kind === 'text') return true; // a message is only shown, never written
          if (o.yes) return true;
          if (!io.stdin.isTTY)
            throw new TscCrocError('ERR_NEEDS_CONSENT', `refused ${describeOffer(offer)}: not a terminal, so nobody can confirm; pass --yes to accept`);
          return confirm(`Accept ${describeOffer(offer)}?`, io.stdin, io.stderr, signal);
        },
      });
      if (result.skipped.length > 0 && !o.json) io.stderr.write(`Kept what was already here (not received): ${listNames(result.skipped)}\n`);
      if (result.text !== undefined)
        io.stdout.write(o.json ? `${JSON.stringify({ event: 'text', text: result.text })}\n` : `${io.stdout.isTTY ? safeForTerminal(result.text) : result.text}\n`);
    } finally {
      ui.stop();
      dispose();
    }
  });

  const relayCommand = program
    .command('relay')
    .description('run a relay that senders and recipients meet on (every flag also reads its TSC_CROC_RELAY_* variable)');
  for (const f of Object.values(RELAY_FLAGS))
    relayCommand.option(f.flag, `${f.help} (env: ${f.env}${f.def === undefined ? '' : `, default: ${f.def}`})`);
  relayCommand.action(async (flags: RelayCliFlags) => {
    const config = relayConfig(flags, io.env, { tty: !!io.stdout.isTTY, colour: colourWanted(io.stdout, io.env) });
    if (config.passwordOnArgv)
      io.stderr.write(`${paintMessage('tsc-croc relay: warning: --password is visible in process lists; prefer TSC_CROC_RELAY_PASSWORD', coloursFor(io.stderr, io.env))}\n`);
    const { startRelay } = await import('../relay/index.js');
    const relay = await startRelay(config.options);
    const host = config.options.host ?? '0.0.0.0';
    await new Promise<void>((resolve) => {
      let signals = 0;
      const stop = (signal: NodeJS.Signals) => {
        signals++;
        if (signals === 1 && config.graceMs > 0) {
          io.stderr.write(`tsc-croc relay: ${signal}: draining, stapled transfers have ${config.graceMs / 1000} s to finish (signal again to stop now)\n`);
          void relay.close({ graceMs: config.graceMs }).then(done, done);
        } else void relay.close().then(done, done);
      };
      const done = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      // only now: whoever reads this line may signal at once (a loaded machine ran the reader first)
      io.stderr.write(`tsc-croc relay: HTTP on ${host}:${relay.httpPort}, TCP on ${host}:${relay.tcpPort}\n`);
    });
  });

  program
    .command('completion')
    .description('print a shell completion script for bash, zsh or fish (README "Shell completion": how to install it)')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(['bash', 'zsh', 'fish']))
    .action(async (shell: 'bash' | 'zsh' | 'fish') => {
      const { completionScript } = await import('./completion.js');
      io.stdout.write(completionScript(program, shell));
    });

  // after a usage error, one line pointing at the command's own help
  program.showHelpAfterError('(run tsc-croc --help)');
  for (const c of program.commands) c.showHelpAfterError(`(run tsc-croc ${c.name()} --help)`);

  return program;
}

/** Options of `receive` that take a value: what follows them is not the code. */
const RECEIVE_VALUE_OPTIONS = new Set(['--relay', '--relay-password', '--out', '--reconnect', '--stall', '--interface', '--wait']);
const LOOKS_LIKE_CODE = /^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)+$/;

/** Options that answer by themselves: never taken as a receive. */
const OWN_ANSWER_OPTIONS = new Set(['-h', '--help', '-V', '--version']);

/**
 * croc's habit: `tsc-croc CODE` and `tsc-croc [receive options] CODE` receive. When the first
 * argument that is not an option (or an option's value) is no command name but parses as a code,
 * `receive` is put in front; anything else is left to the parser (an unknown word stays an
 * unknown command). With the code in TSC_CROC_SECRET (`secretInEnv`), options alone
 * (`tsc-croc --yes --out dir`) receive too; no arguments at all still print the help.
 */
export async function receiveByDefault(argv: string[], commands: readonly string[], secretInEnv = false): Promise<string[]> {
  const receive = () => [...argv.slice(0, 2), 'receive', ...argv.slice(2)];
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--' || OWN_ANSWER_OPTIONS.has(a)) return argv;
    if (a.startsWith('-')) {
      if (RECEIVE_VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    if (commands.includes(a) || !LOOKS_LIKE_CODE.test(a)) return argv;
    const { parseCode } = await import('../core/code-phrase.js');
    try {
      parseCode(a);
    } catch {
      return argv;
    }
    return receive();
  }
  return secretInEnv && argv.length > 2 ? receive() : argv;
}

/** Run the CLI; resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(await receiveByDefault(argv, [...program.commands.map((c) => c.name()), 'help'], !!io.env.TSC_CROC_SECRET));
    return EXIT.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    const c = coloursFor(io.stderr, io.env);
    return reportError(e, (line) => io.stderr.write(`${paintMessage(line, c)}\n`));
  }
}
