/**
 * A ZIP archive written as a stream (PKWARE APPNOTE 6.3.x), for a folder received in the page as
 * one download: entries stored (no compression: the data is usually compressed already, and the
 * page's CPU goes to the cipher), each followed by a data descriptor, since an entry's CRC-32 is
 * known only after its last byte. ZIP64 fields throughout (version needed 4.5), so sizes and
 * offsets past 4 GiB need no second path; names in UTF-8 (flag bit 11).
 *
 * Layout: for each entry, a local header with zero sizes and a ZIP64 extra field, the data, a
 * ZIP64 data descriptor (CRC-32, sizes as 8 bytes); then the central directory (sizes and the
 * local header's offset in its ZIP64 extra field), the ZIP64 end of central directory record,
 * its locator, and the classic end record with its fields at their "see ZIP64" values.
 */

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, as ZIP uses it), continued from `crc` (start at 0). */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const VERSION = 45; // 4.5: ZIP64
const FLAGS = 0x0808; // bit 3: data descriptor follows; bit 11: UTF-8 names
const ALL_ONES_32 = 0xffffffff;

class Bytes {
  readonly buf: Uint8Array;
  readonly #view: DataView;
  #at = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.#view = new DataView(this.buf.buffer);
  }
  u16(v: number): this {
    this.#view.setUint16(this.#at, v, true);
    this.#at += 2;
    return this;
  }
  u32(v: number): this {
    this.#view.setUint32(this.#at, v >>> 0, true);
    this.#at += 4;
    return this;
  }
  u64(v: number): this {
    this.#view.setBigUint64(this.#at, BigInt(v), true);
    this.#at += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.buf.set(b, this.#at);
    this.#at += b.length;
    return this;
  }
}

/** MS-DOS date and time of `ms` (local time, 2-second steps; 1980 at the earliest). */
function dosTime(ms: number): { time: number; date: number } {
  const d = new Date(Math.max(ms, Date.UTC(1980, 0, 2)));
  return {
    time: (d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1),
    date: ((d.getFullYear() - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
  };
}

interface Entry {
  name: Uint8Array;
  offset: number;
  size: number;
  crc: number;
  time: number;
  date: number;
  dir: boolean;
}

/**
 * The archive's bytes, piece by piece: `begin` (a local header), the entry's data (the caller
 * writes it and passes it to `data` for the CRC), `end` (its data descriptor), and at last `finish`
 * (the central directory and the end records). Offsets are counted here from what it returned
 * and what `data` was given.
 */
export class ZipStream {
  readonly #entries: Entry[] = [];
  #offset = 0;
  #current: Entry | null = null;

  /** A local header for `path` (segments joined by '/'; a folder's ends with '/'). */
  begin(path: string, mtimeMs: number, dir = false): Uint8Array {
    if (this.#current !== null) throw new Error('zip: an entry is still open');
    const name = new TextEncoder().encode(dir ? `${path}/` : path);
    const { time, date } = dosTime(mtimeMs);
    this.#current = { name, offset: this.#offset, size: 0, crc: 0, time, date, dir };
    const b = new Bytes(30 + name.length + 20)
      .u32(0x04034b50)
      .u16(VERSION)
      .u16(FLAGS)
      .u16(0) // stored
      .u16(time)
      .u16(date)
      .u32(0) // CRC-32: in the data descriptor
      .u32(ALL_ONES_32) // sizes: in the ZIP64 fields
      .u32(ALL_ONES_32)
      .u16(name.length)
      .u16(20)
      .bytes(name)
      .u16(0x0001) // ZIP64 extra field: uncompressed and compressed size (0 here: see the descriptor)
      .u16(16)
      .u64(0)
      .u64(0);
    this.#offset += b.buf.length;
    return b.buf;
  }

  /** Bytes of the open entry, as written. */
  data(chunk: Uint8Array): void {
    const e = this.#current;
    if (e === null) throw new Error('zip: no entry is open');
    e.crc = crc32(chunk, e.crc);
    e.size += chunk.length;
    this.#offset += chunk.length;
  }

  /** The open entry's data descriptor. */
  end(): Uint8Array {
    const e = this.#current;
    if (e === null) throw new Error('zip: no entry is open');
    this.#current = null;
    this.#entries.push(e);
    const b = new Bytes(24).u32(0x08074b50).u32(e.crc).u64(e.size).u64(e.size);
    this.#offset += b.buf.length;
    return b.buf;
  }

  /** The central directory and the end records. */
  finish(): Uint8Array {
    if (this.#current !== null) throw new Error('zip: an entry is still open');
    const cdStart = this.#offset;
    const cdSize = this.#entries.reduce((n, e) => n + 46 + e.name.length + 28, 0);
    const b = new Bytes(cdSize + 56 + 20 + 22);
    for (const e of this.#entries) {
      b.u32(0x02014b50)
        .u16((3 << 8) | VERSION) // made by: Unix, 4.5
        .u16(VERSION)
        .u16(FLAGS)
        .u16(0)
        .u16(e.time)
        .u16(e.date)
        .u32(e.crc)
        .u32(ALL_ONES_32)
        .u32(ALL_ONES_32)
        .u16(e.name.length)
        .u16(28)
        .u16(0) // comment
        .u16(0) // disk
        .u16(0) // internal attributes
        .u32(e.dir ? ((0o40755 << 16) | 0x10) >>> 0 : (0o100644 << 16) >>> 0) // external: Unix mode (and MS-DOS directory bit)
        .u32(ALL_ONES_32) // local header offset: in the ZIP64 field
        .bytes(e.name)
        .u16(0x0001)
        .u16(24)
        .u64(e.size)
        .u64(e.size)
        .u64(e.offset);
    }
    const zip64End = cdStart + cdSize;
    const n = this.#entries.length;
    b.u32(0x06064b50).u64(44).u16((3 << 8) | VERSION).u16(VERSION).u32(0).u32(0).u64(n).u64(n).u64(cdSize).u64(cdStart);
    b.u32(0x07064b50).u32(0).u64(zip64End).u32(1);
    b.u32(0x06054b50).u16(0).u16(0).u16(0xffff).u16(0xffff).u32(ALL_ONES_32).u32(ALL_ONES_32).u16(0);
    this.#offset += b.buf.length;
    return b.buf;
  }
}
