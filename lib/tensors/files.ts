/** Small file helpers shared by the tensor readers and writers: every output appears only once complete
 * (temp + rename); a file that cannot be opened is bad input naming it. */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { BadInputError } from '../errors.js';

/** A temp path beside `path`, so that the final rename stays on one filesystem. */
export function tempPathFor(path: string): string {
  return `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

/** Writes all of `bytes` at `position` (fs writes may be partial). */
export async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** Reads into all of `into` from `position`; returns the bytes read (short only at end of file). */
export async function readFully(fh: FileHandle, into: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Writes the pieces one after another into `path`, atomically, without concatenating them. */
export async function writePiecesAtomic(path: string, pieces: Iterable<Uint8Array>): Promise<void> {
  const tmp = tempPathFor(path);
  const fh = await open(tmp, 'wx');
  try {
    let pos = 0;
    for (const p of pieces) {
      await writeAll(fh, p, pos);
      pos += p.length;
    }
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Opens a file for reading; failure is a BadInputError naming the file. */
export async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw new BadInputError(`${path}: cannot open: ${(e as Error).message}`);
  }
}
