/** The shapes of the crypto seam (platform.ts for node, platform.browser.ts for browsers). */

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  dkLen: number;
}

/** An incremental SHA-256. */
export interface Sha256 {
  update(data: Uint8Array): Sha256;
  digest(): Uint8Array;
  /** An independent copy of the state so far. */
  copy(): Sha256;
}
