/**
 * The page: the receive view (`/#<code>`, or a code typed in) and the send view (`/#send`).
 * Test contract (keep stable): receive view — data-testid offer, accept, decline, status (reads
 * `done` when every file is written, else the error); send view — file-input, code, status.
 * `?save=download` makes the receive view use downloads (no folder picker).
 * The code is read from the fragment, which browsers never send to the relay, and then removed
 * from the address bar and the history.
 */
import { renderSVG } from 'uqr';
import { TscCrocError, isTscCrocError } from '../core/errors.js';
import type { OfferMessage } from '../core/messages.js';
import { displayName } from '../core/path.js';
import { fromDrop, fromFileList, type Picked } from './drop.js';
import { receive } from './receive.js';
import { needsPassword } from './relay.js';
import { send } from './send.js';
import { DirectorySink, DownloadSink, OpfsDownloadSink, ZipDownloadSink, type Sink } from './sinks.js';

const origin = location.origin;
const app = document.getElementById('app')!;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function size(n: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} ${n === 1 ? 'byte' : 'bytes'}` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** An error as the CLI prints it (without its "tsc-croc: " prefix). */
function errorLine(e: unknown): string {
  if (isTscCrocError(e)) return `${displayName(e.message)} [${e.code}]`;
  return `unexpected error: ${displayName(e instanceof Error ? e.message : String(e))}`;
}

function describeOffer(o: OfferMessage): string {
  if (o.kind === 'text') return `a text message (${size(o.totalBytes)})`;
  const what = [`${o.totalFiles} ${o.totalFiles === 1 ? 'file' : 'files'}`];
  if (o.totalDirs > 0) what.push(`${o.totalDirs} ${o.totalDirs === 1 ? 'folder' : 'folders'}`);
  const names = o.names.slice(0, 10).map(displayName).join(', ') + (o.names.length > 10 ? `, and ${o.names.length - 10} more` : '');
  return `${what.join(' and ')} (${size(o.totalBytes)}): ${names}`;
}

function header(active: 'receive' | 'send'): HTMLElement {
  const h = el('header');
  h.append(el('h1', {}, 'tsc-croc'));
  const nav = el('nav');
  const r = el('a', { href: '#', 'aria-current': active === 'receive' ? 'page' : 'false' }, 'Receive');
  const s = el('a', { href: '#send', 'aria-current': active === 'send' ? 'page' : 'false' }, 'Send');
  nav.append(r, s);
  h.append(nav);
  return h;
}

/** The relay's password field (hidden until the relay asks for one; kept in this page only, never in the address). */
function passwordField(): HTMLInputElement {
  return el('input', { type: 'password', 'data-testid': 'password', placeholder: "the relay's password", autocomplete: 'off', 'aria-label': "the relay's password", hidden: '' });
}

function receiveView(initialCode: string): void {
  app.ondragover = app.ondrop = app.ondragleave = null;
  const download = new URLSearchParams(location.search).get('save') === 'download' || !('showDirectoryPicker' in window);
  app.replaceChildren(header('receive'));
  const form = el('form', { 'data-testid': 'code-form' });
  const input = el('input', { 'data-testid': 'code-input', placeholder: '7-word-word-word', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'code' });
  input.value = initialCode;
  const password = passwordField();
  const go = el('button', { type: 'submit', 'data-testid': 'receive' }, 'Receive');
  form.append(input, password, go);
  const offerBox = el('section', { class: 'offer', hidden: '' });
  const offer = el('p', { 'data-testid': 'offer' });
  const accept = el('button', { 'data-testid': 'accept' }, download ? 'Accept and download' : 'Accept and choose a folder');
  const decline = el('button', { 'data-testid': 'decline', class: 'secondary' }, 'Decline');
  offerBox.append(offer, accept, decline);
  const progress = el('progress', { 'data-testid': 'progress', max: '1', value: '0', hidden: '' });
  const status = el('p', { 'data-testid': 'status', role: 'status', 'aria-live': 'polite' });
  const text = el('pre', { 'data-testid': 'text', hidden: '' });
  app.append(form, offerBox, progress, status, text);

  const start = (code: string): void => {
    form.hidden = true;
    status.classList.remove('error');
    status.textContent = 'starting';
    receive(origin, code, {
      stage: (s) => (status.textContent = s),
      ask: (o) =>
        new Promise<Sink | null>((resolve) => {
          offer.textContent = describeOffer(o);
          offerBox.hidden = false;
          status.textContent = 'waiting for your answer';
          accept.onclick = async () => {
            accept.disabled = decline.disabled = true;
            // a folder (or several names) in download mode: one zip, `<name>.zip` for one top-level name
            if (download && o.kind === 'files' && (o.totalDirs > 0 || o.names.length > 1)) {
              const zip = await ZipDownloadSink.create(`${o.names.length === 1 ? o.names[0]! : 'tsc-croc-files'}.zip`);
              if (zip !== null) return resolve(zip);
            }
            if (download || o.kind === 'text') return resolve((await OpfsDownloadSink.create()) ?? new DownloadSink());
            try {
              const dir = await window.showDirectoryPicker({ mode: 'readwrite' });
              const sink = new DirectorySink(dir);
              const there = await sink.existing(o.names);
              if (there.length > 0 && !window.confirm(`${there.map(displayName).join(', ')} already ${there.length === 1 ? 'exists' : 'exist'} in that folder: replace?`)) return resolve(null);
              resolve(sink);
            } catch {
              resolve(null); // no folder chosen
            }
          };
          decline.onclick = () => {
            accept.disabled = decline.disabled = true;
            resolve(null);
          };
        }),
      progress: (bytes, total) => {
        progress.hidden = false;
        progress.max = Math.max(1, total);
        progress.value = bytes;
      },
      text: (t) => {
        text.hidden = false;
        text.textContent = t;
      },
    }, password.value === '' ? undefined : password.value).then(
      () => (status.textContent = 'done'),
      (e: unknown) => {
        status.textContent = errorLine(e);
        status.classList.add('error');
        if (needsPassword(e)) {
          // nothing was joined: the same code again, with the password typed in
          form.hidden = password.hidden = false;
          password.value = '';
          password.focus();
        }
      },
    );
  };
  form.onsubmit = (ev) => {
    ev.preventDefault();
    if (input.value.trim() !== '') start(input.value);
  };
  if (initialCode !== '') start(initialCode);
}

function sendView(): void {
  app.replaceChildren(header('send'));
  const files = el('input', { type: 'file', multiple: '', 'data-testid': 'file-input', 'aria-label': 'files to send' });
  const folder = el('input', { type: 'file', webkitdirectory: '', 'data-testid': 'folder-input', 'aria-label': 'a folder to send' });
  const pick = el('div', { class: 'pick', 'data-testid': 'drop-zone' });
  pick.append(el('p', {}, 'Drop files or folders here, or pick them:'), el('label', {}, 'Files: '), files, el('label', {}, 'a folder: '), folder);
  const codeBox = el('section', { class: 'code', hidden: '' });
  const code = el('p', { 'data-testid': 'code' });
  const link = el('a', { 'data-testid': 'link', rel: 'noreferrer' });
  const qr = el('img', { 'data-testid': 'qr', alt: 'QR code of the link' });
  codeBox.append(el('p', {}, 'Code:'), code, el('p', {}, 'or open:'), link, qr);
  const passwordForm = el('form', { 'data-testid': 'password-form', hidden: '' });
  const password = passwordField();
  password.hidden = false;
  passwordForm.append(password, el('button', { type: 'submit', 'data-testid': 'password-send' }, 'Send'));
  const progress = el('progress', { 'data-testid': 'progress', max: '1', value: '0', hidden: '' });
  const status = el('p', { 'data-testid': 'status', role: 'status', 'aria-live': 'polite' });
  app.append(pick, passwordForm, codeBox, progress, status);
  let picked: Picked | null = null;
  const start = (picking: Picked | Promise<Picked>): void => {
    passwordForm.hidden = true;
    files.disabled = folder.disabled = true;
    pick.classList.remove('over');
    status.classList.remove('error');
    status.textContent = 'reading the files';
    Promise.resolve(picking)
      .then((p) => {
        if (p.files.length === 0 && p.dirs.length === 0) throw new TscCrocError('ERR_INVALID_ARGUMENT', 'nothing to send: pick or drop files or folders');
        picked = p;
        return send(origin, p, {
          stage: (s) => (status.textContent = s),
          code: (c) => {
            code.textContent = c;
            const url = `${origin}/#${c}`;
            link.href = url;
            link.textContent = url;
            qr.src = `data:image/svg+xml;utf8,${encodeURIComponent(renderSVG(url))}`;
            codeBox.hidden = false;
          },
          failedAttempt: (n, max) => (status.textContent = `Someone tried a wrong code (${n} of ${max})${n < max ? ': still waiting for the right one' : ''}.`),
          progress: (bytes, total) => {
            progress.hidden = false;
            progress.max = Math.max(1, total);
            progress.value = bytes;
          },
        }, password.value === '' ? undefined : password.value);
      })
      .then(
        () => (status.textContent = 'done'),
        (e: unknown) => {
          status.textContent = errorLine(e);
          status.classList.add('error');
          if (codeBox.hidden) files.disabled = folder.disabled = false; // nothing sent yet: pick again
          if (needsPassword(e) && picked !== null) {
            // the same files again, once the password is typed in
            passwordForm.hidden = false;
            password.value = '';
            password.focus();
          }
        },
      );
  };
  passwordForm.onsubmit = (ev) => {
    ev.preventDefault();
    if (picked !== null) start(picked);
  };
  files.onchange = () => files.files !== null && files.files.length > 0 && start(fromFileList(files.files));
  folder.onchange = () => folder.files !== null && folder.files.length > 0 && start(fromFileList(folder.files));
  // files and folders dropped anywhere on the view (the drop zone shows where)
  app.ondragover = (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = files.disabled ? 'none' : 'copy';
    if (!files.disabled) pick.classList.add('over');
  };
  app.ondragleave = (ev) => {
    if (ev.relatedTarget === null) pick.classList.remove('over');
  };
  app.ondrop = (ev) => {
    ev.preventDefault();
    if (!files.disabled && ev.dataTransfer) start(fromDrop(ev.dataTransfer));
  };
}

function route(): void {
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash === 'send') return sendView();
  // the code leaves the address bar and the history at once
  if (hash !== '') history.replaceState(null, '', `${location.pathname}${location.search}`);
  receiveView(hash);
}

window.addEventListener('hashchange', route);
void OpfsDownloadSink.clean();
route();
