/**
 * The crypto seam of src/core, node side: what src/core needs beyond the pure @noble code, from
 * node:crypto (fast, native; scrypt on libuv's thread pool). A browser build resolves
 * `./platform.js` to ./platform.browser.ts instead (scripts/bundle-web.mjs), which has the same
 * exports. Bulk record encryption is not here: the CLI's record layer (record.ts) uses node:crypto
 * directly, the browser's (record-web.ts) WebCrypto.
 * @module
 */
import { createHash, randomFillSync, scrypt } from 'node:crypto';
import type { ScryptParams, Sha256 } from './platform-types.js';

export type { ScryptParams, Sha256 } from './platform-types.js';

/**
 * Fills `bytes` from the CSPRNG and returns it. node:crypto's, not `globalThis.crypto`: the latter
 * is the same generator but loads node's whole Web Crypto module on first use (~1 ms of a start).
 */
export function fillRandom<T extends Uint8Array | Uint32Array>(bytes: T): T {
  return randomFillSync(bytes);
}

/** scrypt (RFC 7914), off the main thread. */
export function scryptBytes(password: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  const { N, r, p, dkLen } = params;
  // scrypt needs 128 * N * r bytes of V plus small buffers; allow twice that.
  const maxmem = 256 * N * r;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, dkLen, { N, r, p, maxmem }, (err, key) => {
      if (err) reject(err);
      else resolve(new Uint8Array(key.buffer, key.byteOffset, key.byteLength));
    });
  });
}

function wrap(h: ReturnType<typeof createHash>): Sha256 {
  return {
    update(data) {
      h.update(data);
      return this;
    },
    digest: () => h.digest(),
    copy: () => wrap(h.copy()),
  };
}

export function createSha256(): Sha256 {
  return wrap(createHash('sha256'));
}
