/**
 * A start-up and handshake timeline for measuring (bench/README.md "Session 3"): with
 * TSC_CROC_TRACE=1 in the environment, `trace(label)` writes one line to stderr,
 *
 *   tsc-croc-trace <ms since the process started> <epoch ms> <pid> <label>
 *
 * and installTrace() also marks node's own start-up phases, every HTTP exchange with the relay,
 * every TCP connection and the process's exit. Off (the default) it costs one boolean test per
 * call, and installTrace() loads nothing. Labels never carry a secret (no code, share or token).
 */
import type { Performance } from 'node:perf_hooks';

const on = process.env.TSC_CROC_TRACE === '1';
/** node:perf_hooks, loaded only when tracing (off, nothing is loaded). */
let perf: Performance | undefined;
const performance = (): Performance => (perf ??= (process.getBuiltinModule('node:perf_hooks') as typeof import('node:perf_hooks')).performance);

/** Whether tracing is on (TSC_CROC_TRACE=1). */
export const tracing = on;

export function trace(label: string): void {
  if (!on) return;
  const t = performance().now();
  process.stderr.write(`tsc-croc-trace ${t.toFixed(1)} ${(performance().timeOrigin + t).toFixed(1)} ${process.pid} ${label}\n`);
}

/** Node's own start-up marks, then HTTP, TCP and exit marks from here on (only when tracing). */
export function installTrace(): void {
  if (!on) return;
  const n = performance().nodeTiming;
  const at = (label: string, ms: number) =>
    process.stderr.write(`tsc-croc-trace ${ms.toFixed(1)} ${(performance().timeOrigin + ms).toFixed(1)} ${process.pid} ${label}\n`);
  at('node: v8 started', n.v8Start);
  at('node: environment', n.environment);
  at('node: bootstrap complete', n.bootstrapComplete);
  trace('cli: entry module running');
  const dc = process.getBuiltinModule('node:diagnostics_channel') as typeof import('node:diagnostics_channel');
  dc.subscribe('http.client.request.start', (m) => {
    const req = (m as { request: { path: string; reusedSocket: boolean } }).request;
    trace(`http: POST ${req.path} sent${req.reusedSocket ? ' (kept-alive connection)' : ''}`);
  });
  dc.subscribe('http.client.response.finish', (m) => {
    const { request, response } = m as { request: { path: string }; response: { statusCode: number } };
    trace(`http: ${request.path} answered ${response.statusCode}`);
  });
  dc.subscribe('net.client.socket', (m) => {
    const s = (m as { socket: import('node:net').Socket }).socket;
    s.once('connect', () => trace(`tcp: connected to port ${s.remotePort ?? '?'}`));
  });
  process.once('exit', () => trace('process: exit'));
}
