/**
 * The optional relay password, checked on /join and on the TCP hello. Both sides are HMACed with a
 * random per-process key before timingSafeEqual, so the comparison takes the same time whatever
 * the lengths and contents; the password itself is never stored elsewhere, logged, or echoed.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** `check(given)`: true when no password is configured, or `given` equals it. */
export type PasswordCheck = (given: string | undefined) => boolean;

export function passwordCheck(password: string | undefined): PasswordCheck {
  if (password === undefined) return () => true;
  const key = randomBytes(32);
  const mac = (s: string): Buffer => createHmac('sha256', key).update(s, 'utf8').digest();
  const expected = mac(password);
  return (given) => {
    // A missing password is still MACed, so that it costs what a wrong one does.
    const ok = timingSafeEqual(mac(given ?? ''), expected);
    return given !== undefined && ok;
  };
}
