/**
 * `tsc-croc completion bash|zsh|fish` through the built CLI: each script names every command the
 * help lists and every flag of each; the bash one loads in bash (`complete -p`) and its function
 * answers COMP_WORDS/COMP_CWORD as a shell would (commands, flags, choices, folders for --out, files
 * for send); zsh and fish scripts are syntax-checked where those shells are installed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsc-croc-completion-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const has = (shell: string) => spawnSync(shell, ['-c', 'exit 0']).status === 0;

async function output(args: string[]): Promise<string> {
  const p = runCli(args);
  assert.equal(await p.exit(), 0, p.stderr());
  return p.stdout();
}

/** The commands `tsc-croc --help` lists, and for each the long flags its own --help lists. */
async function fromHelp(): Promise<Map<string, string[]>> {
  const help = await output(['--help']);
  const names = [...help.slice(help.indexOf('Commands:')).matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 5, help);
  const out = new Map<string, string[]>();
  for (const name of names) {
    const text = name === 'help' ? '' : await output([name, '--help']);
    out.set(name, [...new Set([...text.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!))]);
  }
  assert.ok(out.get('send')!.includes('--relay') && out.get('receive')!.includes('--out') && out.get('relay')!.includes('--port'), 'flags read from the help');
  return out;
}

/** Run `script` in bash after sourcing the completion; returns stdout. */
function bash(file: string, script: string, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['--norc', '--noprofile', '-c', `source ${JSON.stringify(file)} || exit 90\n${script}`], { cwd, timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
    );
  });
}

/** What the bash function offers for the words typed so far (the last one is being completed). */
async function complete(file: string, words: string[], cwd = dir): Promise<string[]> {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const out = await bash(file, `COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _tsc_croc; printf '%s\\n' "\${COMPREPLY[@]}"`, cwd);
  return out.split('\n').filter((l) => l !== '').sort();
}

test('completion bash: loads in bash, and completes commands, flags, choices, folders and files as the program defines them', { skip: !has('bash') && 'bash is not installed' }, async () => {
  const commands = await fromHelp();
  const script = await output(['completion', 'bash']);
  const file = join(dir, 'tsc-croc.bash');
  await writeFile(file, script);
  assert.match(await bash(file, 'complete -p tsc-croc', dir), /complete .*-F _tsc_croc tsc-croc$/m);

  // every command, from the top; and each command's every flag after a '-'
  assert.deepEqual(await complete(file, ['tsc-croc', '']), [...commands.keys(), '--help', '--version', '-V', '-h'].sort());
  for (const [name, flags] of commands) {
    if (name === 'help') continue;
    const offered = await complete(file, ['tsc-croc', name, '--']);
    for (const flag of flags) assert.ok(offered.includes(flag), `${name}: ${flag} is not completed (${offered.join(' ')})`);
  }
  assert.deepEqual(await complete(file, ['tsc-croc', 'se']), ['send']);
  assert.deepEqual(await complete(file, ['tsc-croc', 'send', '--rel']), ['--relay', '--relay-password']);
  assert.deepEqual(await complete(file, ['tsc-croc', 'send', '--curve', '']), ['ed25519', 'p256']);
  assert.deepEqual(await complete(file, ['tsc-croc', 'completion', '']), ['bash', 'fish', 'zsh']);
  // a value the user types (a relay address) gets no file names
  assert.deepEqual(await complete(file, ['tsc-croc', 'send', '--relay', '']), []);

  // folders after --out, files and folders for send's paths
  const cwd = join(dir, 'cwd');
  await mkdir(join(cwd, 'alpha-dir'), { recursive: true });
  await writeFile(join(cwd, 'alpha-file'), 'x');
  assert.deepEqual(await complete(file, ['tsc-croc', 'receive', '--out', 'al'], cwd), ['alpha-dir']);
  assert.deepEqual(await complete(file, ['tsc-croc', 'send', 'al'], cwd), ['alpha-dir', 'alpha-file']);
  assert.deepEqual(await complete(file, ['tsc-croc', 'send', '--json', 'alpha-f'], cwd), ['alpha-file']);
});

test('completion zsh and fish: name every command and every flag, folders for --out, files for send, the curve choices', async () => {
  const commands = await fromHelp();
  for (const shell of ['zsh', 'fish'] as const) {
    const script = await output(['completion', shell]);
    for (const [name, flags] of commands) {
      assert.match(script, shell === 'zsh' ? new RegExp(`'${name}:`) : new RegExp(`-a ${name} `), `${shell}: command ${name}`);
      for (const flag of flags) assert.ok(script.includes(shell === 'zsh' ? flag : `-l ${flag.slice(2)} `), `${shell}: ${name} ${flag}`);
    }
    if (shell === 'zsh') {
      assert.match(script, /^#compdef tsc-croc$/m);
      assert.match(script, /'--out\[[^\]]*\]:out:_files -\/'/);
      assert.match(script, /'--curve\[[^\]]*\]:curve:\(ed25519 p256\)'/);
      assert.match(script, /^ *send\)\n *_arguments [^;]*'\*:file:_files'/m);
    } else {
      assert.match(script, /__fish_seen_subcommand_from receive' -l out -x -a '\(__fish_complete_directories\)'/);
      assert.match(script, /__fish_seen_subcommand_from send' -l curve -x -a 'ed25519 p256'/);
      assert.match(script, /__fish_seen_subcommand_from send' -F$/m);
    }
    if (has(shell)) {
      const file = join(dir, `tsc-croc.${shell}`);
      await writeFile(file, script);
      const r = spawnSync(shell, ['-n', file], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `${shell} -n: ${r.stderr}`);
    }
  }
  // an unknown shell is a usage error
  const bad = runCli(['completion', 'tcsh']);
  assert.equal(await bad.exit(), 2);
  assert.match(bad.stderr(), /bash, zsh, fish/);
});
