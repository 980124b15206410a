/**
 * NumPy .npz archives: a zip of `<key>.npy` members, stored (np.savez) or deflated (np.savez_compressed).
 * Keys keep the central-directory order, which is the order numpy wrote them (keyword arrays first, then
 * arr_0, arr_1, ...); the GOD ROI rule depends on it. Zip parsing is yauzl's; this module adds the npz
 * rules and zip-bomb guards: declared sizes are capped, a deflated member may not claim more than deflate's
 * maximum ratio, each member's npy header must agree with its declared size before anything is allocated,
 * and yauzl aborts a member that inflates past its declared size.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { BadInputError } from '../errors.js';
import { byteView } from './ndarray.js';
import type { NdArray } from './ndarray.js';
import { tempPathFor } from './files.js';
import { NpyDecoder, npyHeaderBytes, npyPreludeLength, parseNpyHeader } from './npy.js';
import type { NpyHeader } from './npy.js';

export interface NpzLimits {
  /** Largest declared uncompressed size of one member. */
  maxEntryBytes: number;
  /** Largest sum of declared uncompressed sizes. */
  maxTotalBytes: number;
  maxEntries: number;
}

export const DEFAULT_NPZ_LIMITS: NpzLimits = {
  maxEntryBytes: 8 * 2 ** 30,
  maxTotalBytes: 32 * 2 ** 30,
  maxEntries: 4096,
};

/** Deflate cannot compress better than about 1032:1; a member claiming more is corrupt or a bomb. */
const MAX_DEFLATE_RATIO = 1032;

export class NpzReader {
  private readonly entries: Map<string, yauzl.Entry>;

  private constructor(
    readonly path: string,
    private readonly zip: yauzl.ZipFile,
    entries: Map<string, yauzl.Entry>,
  ) {
    this.entries = entries;
  }

  /** Keys in stored order, without the `.npy` suffix. */
  get keys(): string[] {
    return [...this.entries.keys()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  static async open(path: string, limits: NpzLimits = DEFAULT_NPZ_LIMITS): Promise<NpzReader> {
    let zip: yauzl.ZipFile;
    try {
      zip = await yauzl.openPromise(path, {
        lazyEntries: true,
        autoClose: false,
        validateEntrySizes: true,
        strictFileNames: true,
      });
    } catch (e) {
      throw new BadInputError(`${path}: not a readable npz/zip archive (${(e as Error).message})`);
    }
    try {
      const entries = new Map<string, yauzl.Entry>();
      let total = 0;
      for await (const entry of zip.eachEntry()) {
        const name = entry.fileName;
        const where = `${path}: member '${name}'`;
        if (entries.size >= limits.maxEntries)
          throw new BadInputError(`${path}: more than ${limits.maxEntries} members`);
        if (!name.endsWith('.npy')) throw new BadInputError(`${where} is not an .npy array`);
        if (entry.isEncrypted()) throw new BadInputError(`${where} is encrypted`);
        if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
          throw new BadInputError(
            `${where} uses compression method ${entry.compressionMethod} (only stored and deflated are supported)`,
          );
        }
        if (entry.uncompressedSize > limits.maxEntryBytes) {
          throw new BadInputError(
            `${where} declares ${entry.uncompressedSize} bytes, over the ${limits.maxEntryBytes}-byte limit`,
          );
        }
        if (
          entry.compressionMethod === 8 &&
          entry.uncompressedSize > Math.max(entry.compressedSize, 1) * MAX_DEFLATE_RATIO
        ) {
          throw new BadInputError(
            `${where} declares ${entry.uncompressedSize} bytes from ${entry.compressedSize} compressed, beyond deflate's ${MAX_DEFLATE_RATIO}:1 maximum (zip bomb or corrupt)`,
          );
        }
        total += entry.uncompressedSize;
        if (total > limits.maxTotalBytes)
          throw new BadInputError(`${path}: members declare over ${limits.maxTotalBytes} bytes in total`);
        const key = name.slice(0, -4);
        if (entries.has(key)) throw new BadInputError(`${path}: duplicate member '${name}'`);
        entries.set(key, entry);
      }
      return new NpzReader(path, zip, entries);
    } catch (e) {
      zip.close();
      if (e instanceof BadInputError) throw e;
      throw new BadInputError(`${path}: corrupt zip directory (${(e as Error).message})`);
    }
  }

  private entry(key: string): yauzl.Entry {
    const entry = this.entries.get(key);
    if (!entry) throw new BadInputError(`${this.path}: no array '${key}' (has: ${this.keys.join(', ')})`);
    return entry;
  }

  private async open(entry: yauzl.Entry, source: string): Promise<Readable> {
    try {
      return await this.zip.openReadStreamPromise(entry);
    } catch (e) {
      throw new BadInputError(`${source}: cannot open (${(e as Error).message})`);
    }
  }

  /**
   * Streams one member: collects bytes until its npy header is complete, checks the header against the
   * member's declared size, then decodes the rest into a new array (or stops there if `headerOnly`).
   */
  private async stream(
    key: string,
    headerOnly: boolean,
  ): Promise<{ header: NpyHeader; decoder?: NpyDecoder }> {
    const entry = this.entry(key);
    const source = `${this.path}: member '${entry.fileName}'`;
    const stream = await this.open(entry, source);
    let head: Uint8Array = new Uint8Array(0);
    let header: NpyHeader | undefined;
    let decoder: NpyDecoder | undefined;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (decoder) {
          decoder.push(chunk);
          continue;
        }
        head = concat(head, chunk);
        if (head.length < 12 && head.length < entry.uncompressedSize) continue;
        const need = npyPreludeLength(head, source);
        if (head.length < need) continue;
        header = parseNpyHeader(head.subarray(0, need), source);
        const declared = new NpyDecoder(header, source, { allocate: false }).byteLength;
        if (need + declared !== entry.uncompressedSize) {
          throw new BadInputError(
            `${source}: header promises shape [${header.shape.join(', ')}] (${declared} data bytes) but the member holds ${entry.uncompressedSize - need}`,
          );
        }
        if (headerOnly) break;
        decoder = new NpyDecoder(header, source);
        decoder.push(head.subarray(need));
      }
    } catch (e) {
      if (e instanceof BadInputError) throw e;
      throw new BadInputError(`${source}: corrupt data (${(e as Error).message})`);
    } finally {
      stream.destroy();
    }
    if (!header)
      throw new BadInputError(`${source}: truncated: ${head.length} bytes is too short for an npy header`);
    return decoder ? { header, decoder } : { header };
  }

  /** Reads one array, streaming (inflating) it straight into its final typed array. */
  async read(key: string): Promise<NdArray> {
    const { decoder } = await this.stream(key, false);
    return decoder!.finish();
  }

  /** The npy header of one member (dtype, shape) without reading its data. */
  async header(key: string): Promise<NpyHeader> {
    return (await this.stream(key, true)).header;
  }

  close(): void {
    this.zip.close();
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Opens `path`, runs `fn`, and always closes the archive. */
export async function withNpz<T>(
  path: string,
  fn: (npz: NpzReader) => Promise<T>,
  limits?: NpzLimits,
): Promise<T> {
  const npz = await NpzReader.open(path, limits);
  try {
    return await fn(npz);
  } finally {
    npz.close();
  }
}

/** Reads every array of an archive, in stored order. */
export async function readNpz(path: string, limits?: NpzLimits): Promise<Map<string, NdArray>> {
  return withNpz(
    path,
    async (npz) => {
      const out = new Map<string, NdArray>();
      for (const key of npz.keys) out.set(key, await npz.read(key));
      return out;
    },
    limits,
  );
}

const WRITE_SLICE = 1 << 22;
/** A fixed timestamp keeps archives byte-identical across runs (numpy uses the wall clock). */
const FIXED_MTIME = new Date(2000, 0, 1);

function* npyPieces(arr: NdArray): Generator<Buffer> {
  const header = npyHeaderBytes(arr.dtype, arr.shape);
  yield Buffer.from(header.buffer, header.byteOffset, header.length);
  const data = byteView(arr.data);
  for (let off = 0; off < data.length; off += WRITE_SLICE) {
    // views, not copies: the archive streams straight from the arrays
    yield Buffer.from(data.buffer, data.byteOffset + off, Math.min(WRITE_SLICE, data.length - off));
  }
}

/**
 * Writes arrays as `<key>.npy` members in the given order: stored like np.savez, or deflated like
 * np.savez_compressed. The archive appears at `path` only once complete.
 */
export async function writeNpz(
  path: string,
  entries: Iterable<readonly [string, NdArray]>,
  opts: { compress: boolean },
): Promise<void> {
  const zip = new yazl.ZipFile();
  const seen = new Set<string>();
  for (const [key, arr] of entries) {
    if (key === '' || key.includes('/') || seen.has(key))
      throw new RangeError(`invalid or duplicate npz key '${key}'`);
    seen.add(key);
    const size = npyHeaderBytes(arr.dtype, arr.shape).length + arr.data.byteLength;
    zip.addReadStream(Readable.from(npyPieces(arr), { objectMode: false }), `${key}.npy`, {
      compress: opts.compress,
      mtime: FIXED_MTIME,
      forceDosTimestamp: true,
      size,
    });
  }
  zip.end();
  const tmp = tempPathFor(path);
  try {
    await pipeline(zip.outputStream, createWriteStream(tmp, { flags: 'wx' }));
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
