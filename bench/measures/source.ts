/** The random source file a large-transfer measure sends, written once, and its SHA-256. */
import { join } from 'node:path';
import { sha256File, writeRandomFile } from '../files.js';
import type { Bench } from '../harness.js';
import { formatSize } from '../report.js';

export async function randomSource(b: Bench, label: string, bytes: number): Promise<{ file: string; expected: string }> {
  const file = join(await b.dir(`${label}-src`), `${label}-${bytes}.bin`);
  b.log(`${formatSize(bytes)}: writing the file`);
  await writeRandomFile(file, bytes);
  return { file, expected: await sha256File(file) };
}
