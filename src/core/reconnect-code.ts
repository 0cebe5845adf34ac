/**
 * Where two peers meet again after their connection dropped mid-transfer (docs/protocol.md §7):
 * a channel name and a PAKE password derived from the session keys both already hold, so the
 * relay learns nothing new, nobody without the keys can find or join the channel, and the new
 * SPAKE2 run (with a 256-bit password) gives fresh record keys.
 *
 *   base    = HKDF-SHA256(ikm = k_s2r || k_r2s, salt = "", info = "tsc-croc/v1/reconnect", 32)
 *   channel = "r" || hex(HKDF(base, "", "tsc-croc/v1/reconnect/channel" || u8 slot, 10))
 *   secret  = hex(HKDF(base, "", "tsc-croc/v1/reconnect/secret", 32))
 *
 * Slots: a channel the relay still holds closed (from an attempt that failed midway) cannot be
 * joined again, so each side tries slots in order and skips those; both go to the lowest free one.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from './assert.js';
import type { SessionKeys } from './key-schedule.js';

/** Slots tried before giving up on a relay (each failed attempt can leave one closed channel behind). */
export const RECONNECT_SLOTS = 16;

import { utf8 } from './utf8.js';
const EMPTY = new Uint8Array(0);

export interface ReconnectCode {
  channel: string;
  secret: string;
}

export function reconnectCode(keys: SessionKeys, slot: number): ReconnectCode {
  if (!Number.isInteger(slot) || slot < 0 || slot >= RECONNECT_SLOTS) throw new RangeError(`slot must be in [0, ${RECONNECT_SLOTS})`);
  const ikm = new Uint8Array(keys.senderToRecipient.length + keys.recipientToSender.length);
  ikm.set(keys.senderToRecipient, 0);
  ikm.set(keys.recipientToSender, keys.senderToRecipient.length);
  const base = hkdf(sha256, ikm, EMPTY, utf8('tsc-croc/v1/reconnect'), 32);
  const info = new Uint8Array([...utf8('tsc-croc/v1/reconnect/channel'), slot]);
  return {
    channel: `r${bytesToHex(hkdf(sha256, base, EMPTY, info, 10))}`,
    secret: bytesToHex(hkdf(sha256, base, EMPTY, utf8('tsc-croc/v1/reconnect/secret'), 32)),
  };
}
