/**
 * A reader for the page's folder downloads (src/web/zip.ts writes them): the end records, the
 * central directory, each entry's data through its local header. Written from APPNOTE 6.3.x, with
 * its own CRC-32 (bit by bit, not the writer's table), so that a test does not check the writer
 * against itself. Stored entries only (what the page writes).
 */
export interface ZipEntry {
  name: string;
  data: Buffer;
  crcOk: boolean;
  dir: boolean;
}

function crc32Bitwise(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

export function readZip(zip: Buffer): ZipEntry[] {
  const eocd = zip.length - 22;
  if (zip.readUInt32LE(eocd) !== 0x06054b50) throw new Error('no end of central directory record at the end');
  const locator = eocd - 20;
  if (zip.readUInt32LE(locator) !== 0x07064b50) throw new Error('no ZIP64 locator');
  const end64 = Number(zip.readBigUInt64LE(locator + 8));
  if (zip.readUInt32LE(end64) !== 0x06064b50) throw new Error('no ZIP64 end record');
  const count = Number(zip.readBigUInt64LE(end64 + 32));
  let at = Number(zip.readBigUInt64LE(end64 + 48));
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`central directory entry ${i} is not where it should be`);
    const method = zip.readUInt16LE(at + 10);
    const crc = zip.readUInt32LE(at + 16);
    const nameLen = zip.readUInt16LE(at + 28);
    const extraLen = zip.readUInt16LE(at + 30);
    const commentLen = zip.readUInt16LE(at + 32);
    const external = zip.readUInt32LE(at + 38);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLen);
    const extra = at + 46 + nameLen;
    if (zip.readUInt16LE(extra) !== 0x0001) throw new Error(`${name}: no ZIP64 extra field`);
    const size = Number(zip.readBigUInt64LE(extra + 4));
    const offset = Number(zip.readBigUInt64LE(extra + 20));
    if (method !== 0) throw new Error(`${name}: not stored`);
    if (zip.readUInt32LE(offset) !== 0x04034b50) throw new Error(`${name}: no local header at its offset`);
    const start = offset + 30 + zip.readUInt16LE(offset + 26) + zip.readUInt16LE(offset + 28);
    const data = zip.subarray(start, start + size);
    // the data descriptor after the data repeats the CRC and the sizes
    if (zip.readUInt32LE(start + size) !== 0x08074b50 || zip.readUInt32LE(start + size + 4) !== crc) throw new Error(`${name}: data descriptor missing or different`);
    entries.push({ name, data, crcOk: crc32Bitwise(data) === crc, dir: name.endsWith('/') && ((external >>> 16) & 0o170000) === 0o040000 });
    at = extra + extraLen + commentLen;
  }
  return entries;
}
