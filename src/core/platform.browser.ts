/**
 * The crypto seam of src/core, browser side (see ./platform.ts, whose exports this mirrors):
 * scrypt and SHA-256 from @noble/hashes. scrypt yields to the event loop while it runs, so the
 * page stays responsive.
 * @module
 */
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { ScryptParams, Sha256 } from './platform-types.js';

export type { ScryptParams, Sha256 } from './platform-types.js';

/** Fills `bytes` from the browser's CSPRNG and returns it. */
export function fillRandom<T extends Uint8Array | Uint32Array>(bytes: T): T {
  return globalThis.crypto.getRandomValues(bytes);
}

export function scryptBytes(password: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  const { N, r, p, dkLen } = params;
  return scryptAsync(password, salt, { N, r, p, dkLen, maxmem: 256 * N * r, asyncTick: 10 });
}

type NobleHash = ReturnType<typeof sha256.create>;

function wrap(h: NobleHash): Sha256 {
  return {
    update(data) {
      h.update(data);
      return this;
    },
    digest: () => h.digest(),
    copy: () => wrap(h.clone()),
  };
}

export function createSha256(): Sha256 {
  return wrap(sha256.create());
}
