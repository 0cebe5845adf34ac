/** UTF-8 without Buffer, so that src/core runs in a browser as it does in node. */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The UTF-8 bytes of `s` (lone surrogates become U+FFFD, as Buffer.from(s, 'utf8') makes them). */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Bytes of `s` in UTF-8, without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3; // BMP, or a lone surrogate (3 bytes of U+FFFD)
  }
  return n;
}

/** Decode UTF-8 (invalid sequences become U+FFFD, as Buffer#toString('utf8') makes them). */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
