/** HAProxy in tests and the fleet bench: the binary, and a round-robin config over relays' HTTP ports. */

export const HAPROXY = process.env.TSC_CROC_TEST_HAPROXY ?? '/usr/sbin/haproxy';

/**
 * haproxy.cfg text: HTTP on 127.0.0.1:`front`, round-robin over the relays' HTTP ports on
 * 127.0.0.1, each checked on /health every 500 ms (one failure takes it out, one success back),
 * requests of a dead server redispatched; client and server timeouts of `timeoutS` (long-polls).
 */
export function haproxyConfig(front: number, httpPorts: readonly number[], opts: { maxconn: number; timeoutS: number }): string {
  return [
    'global',
    `  maxconn ${opts.maxconn}`,
    'defaults',
    '  mode http',
    '  retries 3',
    '  option redispatch',
    '  timeout connect 5s',
    `  timeout client ${opts.timeoutS}s`,
    `  timeout server ${opts.timeoutS}s`,
    'frontend relays',
    `  bind 127.0.0.1:${front}`,
    '  default_backend fleet',
    'backend fleet',
    '  balance roundrobin',
    '  option httpchk GET /health',
    ...httpPorts.map((p, i) => `  server r${i} 127.0.0.1:${p} check inter 500ms fall 1 rise 1`),
    '',
  ].join('\n');
}
