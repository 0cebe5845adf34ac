/**
 * The context of one key agreement (curve and channel) and its check: a module of its own,
 * without the curve arithmetic, so that the password scalar (password.ts) can be derived before
 * the SPAKE2 code is loaded.
 * @module
 */
import { astring } from './assert.js';
import { CHANNEL_PATTERN, CURVES, type CurveName } from './relay-api.js';

export interface HandshakeContext {
  curve: CurveName;
  channel: string;
}

const CHANNEL_RE = new RegExp(CHANNEL_PATTERN);

/** Check a run's context: a known curve and a well-formed channel name. */
export function assertContext(ctx: unknown): asserts ctx is HandshakeContext {
  if (typeof ctx !== 'object' || ctx === null) throw new TypeError('ctx must be an object');
  const c = ctx as Record<string, unknown>;
  if (typeof c.curve !== 'string' || !(CURVES as readonly string[]).includes(c.curve)) throw new TypeError(`ctx.curve must be one of ${CURVES.join(', ')}`);
  astring(c.channel, 'ctx.channel', 32);
  if (!CHANNEL_RE.test(c.channel)) throw new RangeError(`ctx.channel must match ${CHANNEL_PATTERN}`);
}
