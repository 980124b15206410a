/**
 * NumPy .npy files (format versions 1.0, 2.0, 3.0). The header is a Python dict literal; it is parsed by a
 * small strict parser (exactly the keys descr, fortran_order and shape), never evaluated. Reading checks the
 * header against the number of bytes actually present before allocating, converts big-endian data and
 * Fortran order to native C order, and copies each byte once into the final typed array (streams go
 * through NpyDecoder in chunks). Writing emits version 1.0 (2.0 if the header would not fit), little-endian,
 * C order, padded to 64 bytes like numpy.
 */
import { open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { BadInputError } from '../errors.js';
import { openForReading, readFully, tempPathFor, writeAll } from './files.js';
import { DTYPES, ITEMSIZE, allocate, byteView, shapeSize } from './ndarray.js';
import type { DType, NdArray } from './ndarray.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** Headers of real files are a few hundred bytes; anything far larger is corrupt or hostile. */
export const MAX_NPY_HEADER_BYTES = 1 << 16;

export interface NpyHeader {
  version: 1 | 2 | 3;
  /** The raw descr string, e.g. '<f4' or '|O' (object arrays are only handled by the pickle reader). */
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Offset of the first data byte from the start of the file. */
  dataOffset: number;
}

function bad(source: string, problem: string): BadInputError {
  return new BadInputError(`${source}: ${problem}`);
}

/**
 * From the first bytes of a file, the total length of magic + version + length field + header.
 * Needs at least 12 bytes (or the whole file if shorter).
 */
export function npyPreludeLength(prefix: Uint8Array, source: string): number {
  if (prefix.length < 10)
    throw bad(source, `truncated: ${prefix.length} bytes is too short for an npy header`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (prefix[i] !== MAGIC[i]) throw bad(source, 'not an npy file (wrong magic bytes)');
  }
  const major = prefix[6]!;
  const minor = prefix[7]!;
  if (![1, 2, 3].includes(major) || minor !== 0)
    throw bad(source, `unsupported npy format version ${major}.${minor}`);
  let headerLen: number;
  let fixed: number;
  if (major === 1) {
    headerLen = prefix[8]! | (prefix[9]! << 8);
    fixed = 10;
  } else {
    if (prefix.length < 12)
      throw bad(source, `truncated: ${prefix.length} bytes is too short for an npy header`);
    headerLen = (prefix[8]! | (prefix[9]! << 8) | (prefix[10]! << 16)) + prefix[11]! * 2 ** 24;
    fixed = 12;
  }
  if (headerLen > MAX_NPY_HEADER_BYTES) {
    throw bad(source, `npy header claims ${headerLen} bytes, over the ${MAX_NPY_HEADER_BYTES}-byte limit`);
  }
  return fixed + headerLen;
}

/** Tokeniser + recursive-descent parser for the one dict literal numpy writes. */
class HeaderParser {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly source: string,
  ) {}

  private fail(what: string): never {
    throw bad(
      this.source,
      `malformed npy header (${what} at column ${this.pos}): ${JSON.stringify(this.text.trim())}`,
    );
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && (this.text[this.pos] === ' ' || this.text[this.pos] === '\t'))
      this.pos++;
  }

  private peek(): string | undefined {
    this.skipSpace();
    return this.text[this.pos];
  }

  private expect(ch: string): void {
    if (this.peek() !== ch) this.fail(`expected '${ch}'`);
    this.pos++;
  }

  private string(): string {
    const q = this.peek();
    if (q !== "'" && q !== '"') this.fail('expected a string');
    const end = this.text.indexOf(q, this.pos + 1);
    if (end < 0) this.fail('unterminated string');
    const s = this.text.slice(this.pos + 1, end);
    // numpy's descr strings and keys never need escapes; refusing them keeps the grammar trivial
    if (s.includes('\\') || s.includes('\n')) this.fail('escape sequences are not allowed');
    this.pos = end + 1;
    return s;
  }

  private integer(): number {
    this.skipSpace();
    const m = /^[0-9]+L?/.exec(this.text.slice(this.pos)); // 'L': shapes written by Python 2
    if (!m) this.fail('expected a non-negative integer');
    this.pos += m[0].length;
    const v = Number(m[0].replace('L', ''));
    if (!Number.isSafeInteger(v)) this.fail('dimension too large');
    return v;
  }

  private boolean(): boolean {
    this.skipSpace();
    for (const [word, v] of [
      ['True', true],
      ['False', false],
    ] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return v;
      }
    }
    this.fail('expected True or False');
  }

  private tuple(): number[] {
    this.expect('(');
    const dims: number[] = [];
    if (this.peek() === ')') {
      this.pos++;
      return dims;
    }
    for (;;) {
      dims.push(this.integer());
      const c = this.peek();
      if (c === ')') {
        // '(5)' is an int in Python, not a tuple
        if (dims.length === 1) this.fail('a one-element shape needs a trailing comma');
        this.pos++;
        return dims;
      }
      this.expect(',');
      if (this.peek() === ')') {
        this.pos++;
        return dims;
      }
    }
  }

  parse(): { descr: string; fortranOrder: boolean; shape: number[] } {
    const seen = new Map<string, unknown>();
    this.expect('{');
    while (this.peek() !== '}') {
      const key = this.string();
      this.expect(':');
      if (seen.has(key)) this.fail(`duplicate key '${key}'`);
      if (key === 'descr') {
        if (this.peek() === '[') this.fail('structured dtypes are not supported');
        seen.set(key, this.string());
      } else if (key === 'fortran_order') seen.set(key, this.boolean());
      else if (key === 'shape') seen.set(key, this.tuple());
      else this.fail(`unexpected key '${key}'`);
      if (this.peek() === ',') this.pos++;
      else if (this.peek() !== '}') this.fail("expected ',' or '}'");
    }
    this.pos++;
    if (!/^[ \t]*\n$/.test(this.text.slice(this.pos))) this.fail('header must end with spaces and a newline');
    for (const k of ['descr', 'fortran_order', 'shape']) if (!seen.has(k)) this.fail(`missing key '${k}'`);
    return {
      descr: seen.get('descr') as string,
      fortranOrder: seen.get('fortran_order') as boolean,
      shape: seen.get('shape') as number[],
    };
  }
}

/** Parses magic, version and the header dict. `buf` must hold at least the whole header. */
export function parseNpyHeader(buf: Uint8Array, source: string): NpyHeader {
  const dataOffset = npyPreludeLength(buf, source);
  if (buf.length < dataOffset) {
    throw bad(
      source,
      `truncated: the npy header needs ${dataOffset} bytes but only ${buf.length} are present`,
    );
  }
  const version = buf[6] as 1 | 2 | 3;
  const fixed = version === 1 ? 10 : 12;
  let text: string;
  try {
    text = new TextDecoder(version === 3 ? 'utf-8' : 'latin1', { fatal: true }).decode(
      buf.subarray(fixed, dataOffset),
    );
  } catch {
    throw bad(source, 'npy header is not valid UTF-8');
  }
  const h = new HeaderParser(text, source).parse();
  try {
    shapeSize(h.shape);
  } catch (e) {
    throw bad(source, (e as Error).message);
  }
  return { version, ...h, dataOffset };
}

const DESCR_TYPES: Record<string, DType> = {
  b1: 'bool',
  u1: 'uint8',
  i4: 'int32',
  i8: 'int64',
  f4: 'float32',
  f8: 'float64',
};

/** Maps a descr such as '>i8' to a supported dtype and its byte order. */
export function descrToDType(descr: string, source: string): { dtype: DType; bigEndian: boolean } {
  const order = descr[0];
  const dtype = DESCR_TYPES[descr.slice(1)];
  const oneByte = dtype !== undefined && ITEMSIZE[dtype] === 1;
  if (dtype === undefined || !(order === '<' || order === '>' || (order === '|' && oneByte))) {
    throw bad(source, `unsupported dtype '${descr}' (supported: ${DTYPES.join(', ')})`);
  }
  return { dtype, bigEndian: order === '>' && !oneByte };
}

/** The numpy descr string this module writes for `dtype` (always little-endian). */
export function dtypeDescr(dtype: DType): string {
  const code = Object.entries(DESCR_TYPES).find(([, d]) => d === dtype)![0];
  return (ITEMSIZE[dtype] === 1 ? '|' : '<') + code;
}

/**
 * Receives the data bytes of one array in arbitrary chunks and writes each byte once into the final
 * C-order native array, byte-swapping big-endian input and scattering Fortran-order input.
 */
export class NpyDecoder {
  readonly array: NdArray;
  private readonly bytes: Uint8Array;
  private readonly itemsize: number;
  private readonly total: number;
  private received = 0;
  private readonly bigEndian: boolean;
  private readonly pending: Uint8Array;
  private pendingLen = 0;
  // Fortran scatter state: multi-index (first axis fastest) and the C element offset it maps to
  private readonly fortran: boolean;
  private readonly idx: number[];
  private readonly cStrides: number[];
  private cOffset = 0;

  /** With `allocate: false` the decoder only validates the header and reports byteLength. */
  constructor(
    header: Pick<NpyHeader, 'descr' | 'fortranOrder' | 'shape'>,
    private readonly source: string,
    opts: { allocate: boolean } = { allocate: true },
  ) {
    const { dtype, bigEndian } = descrToDType(header.descr, source);
    this.bigEndian = bigEndian;
    this.total = shapeSize(header.shape);
    this.itemsize = ITEMSIZE[dtype];
    this.array = { dtype, shape: [...header.shape], data: allocate(dtype, opts.allocate ? this.total : 0) };
    this.bytes = byteView(this.array.data);
    this.pending = new Uint8Array(this.itemsize);
    this.fortran = header.fortranOrder && header.shape.length > 1;
    this.idx = header.shape.map(() => 0);
    this.cStrides = header.shape.map((_, k) => header.shape.slice(k + 1).reduce((a, b) => a * b, 1));
  }

  /** Bytes of data the header promises. */
  get byteLength(): number {
    return this.total * this.itemsize;
  }

  push(chunk: Uint8Array): void {
    let pos = 0;
    if (this.pendingLen > 0) {
      const take = Math.min(this.itemsize - this.pendingLen, chunk.length);
      this.pending.set(chunk.subarray(0, take), this.pendingLen);
      this.pendingLen += take;
      pos = take;
      if (this.pendingLen < this.itemsize) return;
      this.emit(this.pending, 0, 1);
      this.pendingLen = 0;
    }
    const whole = Math.floor((chunk.length - pos) / this.itemsize);
    if (whole > 0) this.emit(chunk, pos, whole);
    pos += whole * this.itemsize;
    if (pos < chunk.length) {
      this.pending.set(chunk.subarray(pos));
      this.pendingLen = chunk.length - pos;
      if (this.received >= this.total) this.tooMuch();
    }
  }

  private tooMuch(): never {
    throw bad(this.source, `more data than the header's shape [${this.array.shape.join(', ')}] holds`);
  }

  private emit(src: Uint8Array, off: number, count: number): void {
    if (this.received + count > this.total) this.tooMuch();
    const isz = this.itemsize;
    if (!this.fortran) {
      const at = this.received * isz;
      this.bytes.set(src.subarray(off, off + count * isz), at);
      if (this.bigEndian) swapBytes(this.bytes, at, count, isz);
    } else {
      const shape = this.array.shape;
      for (let e = 0; e < count; e++) {
        const dst = this.cOffset * isz;
        const s = off + e * isz;
        for (let b = 0; b < isz; b++) this.bytes[dst + b] = src[s + (this.bigEndian ? isz - 1 - b : b)]!;
        for (let k = 0; k < shape.length; k++) {
          this.idx[k]!++;
          this.cOffset += this.cStrides[k]!;
          if (this.idx[k]! < shape[k]!) break;
          this.cOffset -= this.idx[k]! * this.cStrides[k]!;
          this.idx[k] = 0;
        }
      }
    }
    this.received += count;
  }

  /** Checks that exactly the promised bytes arrived (and that bools are 0/1); returns the array. */
  finish(): NdArray {
    if (this.received !== this.total || this.pendingLen !== 0) {
      const got = this.received * this.itemsize + this.pendingLen;
      throw bad(
        this.source,
        `truncated: ${got} data bytes but the header's shape [${this.array.shape.join(', ')}] needs ${this.byteLength}`,
      );
    }
    if (this.array.dtype === 'bool' && this.bytes.some((b) => b > 1)) {
      throw bad(this.source, 'bool array holds byte values other than 0 and 1');
    }
    return this.array;
  }
}

function swapBytes(bytes: Uint8Array, at: number, count: number, isz: number): void {
  for (let e = 0, p = at; e < count; e++, p += isz) {
    for (let i = 0, j = isz - 1; i < j; i++, j--) {
      const t = bytes[p + i]!;
      bytes[p + i] = bytes[p + j]!;
      bytes[p + j] = t;
    }
  }
}

/** Parses a whole .npy file held in memory; `source` names it in errors. */
/**
 * Checks the header's data size against the bytes the file holds before the array is allocated: a header
 * claiming a huge shape is then this error, naming the file, rather than a failed allocation.
 */
function checkDataLength(header: NpyHeader, source: string, have: number): void {
  const need = new NpyDecoder(header, source, { allocate: false }).byteLength;
  if (have !== need) {
    throw bad(
      source,
      `header promises shape [${header.shape.join(', ')}] (${need} data bytes) but the file holds ${have}`,
    );
  }
}

export function parseNpy(buf: Uint8Array, source: string): NdArray {
  const header = parseNpyHeader(buf, source);
  checkDataLength(header, source, buf.length - header.dataOffset);
  const decoder = new NpyDecoder(header, source);
  decoder.push(buf.subarray(header.dataOffset));
  return decoder.finish();
}

const READ_CHUNK = 1 << 24;

/** Reads the header of an open npy file; returns it with the file size. */
async function readHeaderFrom(
  fh: FileHandle,
  path: string,
): Promise<{ header: NpyHeader; fileSize: number }> {
  const fileSize = (await fh.stat()).size;
  const prefix = new Uint8Array(Math.min(fileSize, 12));
  await readFully(fh, prefix, 0);
  const len = npyPreludeLength(prefix, path);
  if (fileSize < len)
    throw bad(path, `truncated: the npy header needs ${len} bytes but the file has ${fileSize}`);
  const headBuf = new Uint8Array(len);
  await readFully(fh, headBuf, 0);
  return { header: parseNpyHeader(headBuf, path), fileSize };
}

/** Reads an .npy file, streaming its data into the final array. */
export async function readNpy(path: string): Promise<NdArray> {
  const fh = await openForReading(path);
  try {
    const { header, fileSize } = await readHeaderFrom(fh, path);
    const have = fileSize - header.dataOffset;
    checkDataLength(header, path, have);
    const decoder = new NpyDecoder(header, path);
    const chunk = new Uint8Array(Math.min(READ_CHUNK, Math.max(have, 1)));
    for (let pos = header.dataOffset; pos < fileSize;) {
      const n = await readFully(fh, chunk.subarray(0, Math.min(chunk.length, fileSize - pos)), pos);
      if (n === 0) break; // the file shrank while being read; finish() reports it
      decoder.push(chunk.subarray(0, n));
      pos += n;
    }
    return decoder.finish();
  } finally {
    await fh.close();
  }
}

/** The header bytes (magic to newline) numpy would write for a C-order little-endian array. */
export function npyHeaderBytes(dtype: DType, shape: readonly number[]): Uint8Array {
  shapeSize(shape);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${dtypeDescr(dtype)}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  for (const [version, fixed] of [
    [1, 10],
    [2, 12],
  ] as const) {
    const total = Math.ceil((fixed + dict.length + 1) / 64) * 64;
    const headerLen = total - fixed;
    if (version === 1 && headerLen > 0xffff) continue;
    const out = new Uint8Array(total);
    out.set(MAGIC);
    out[6] = version;
    out[7] = 0;
    if (version === 1) new DataView(out.buffer).setUint16(8, headerLen, true);
    else new DataView(out.buffer).setUint32(8, headerLen, true);
    const text = dict.padEnd(headerLen - 1, ' ') + '\n';
    out.set(new TextEncoder().encode(text), fixed);
    return out;
  }
  throw new RangeError('npy header too long');
}

/** A whole .npy file in memory (header + data). */
export function encodeNpy(arr: NdArray): Uint8Array {
  const header = npyHeaderBytes(arr.dtype, arr.shape);
  const data = byteView(arr.data);
  if (data.length !== shapeSize(arr.shape) * ITEMSIZE[arr.dtype])
    throw new RangeError('data length does not match shape');
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  out.set(data, header.length);
  return out;
}

/**
 * Writes an .npy file from data supplied in pieces (e.g. rows gathered from a bigger array), so a large
 * output never needs a contiguous copy. The file appears at `path` only when close() succeeds.
 */
export class NpyFileWriter {
  private written = 0;
  private position: number;

  private constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly tmp: string,
    private readonly expected: number,
    headerLength: number,
  ) {
    this.position = headerLength;
  }

  static async create(path: string, dtype: DType, shape: readonly number[]): Promise<NpyFileWriter> {
    const header = npyHeaderBytes(dtype, shape);
    const tmp = tempPathFor(path);
    const fh = await open(tmp, 'wx');
    try {
      await writeAll(fh, header, 0);
    } catch (e) {
      await fh.close();
      await rm(tmp, { force: true });
      throw e;
    }
    return new NpyFileWriter(fh, path, tmp, shapeSize(shape) * ITEMSIZE[dtype], header.length);
  }

  /** Appends raw little-endian C-order element bytes. */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.written + bytes.length > this.expected)
      throw new RangeError(`${this.path}: more data than the declared shape`);
    await writeAll(this.fh, bytes, this.position);
    this.position += bytes.length;
    this.written += bytes.length;
  }

  async close(): Promise<void> {
    try {
      if (this.written !== this.expected) {
        throw new RangeError(
          `${this.path}: wrote ${this.written} data bytes, the declared shape needs ${this.expected}`,
        );
      }
      await this.fh.close();
      await rename(this.tmp, this.path);
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  /** Drops the partial file. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await rm(this.tmp, { force: true });
  }
}

/** Writes `arr` to `path` (atomically: temp file + rename), without copying its data. */
export async function writeNpy(path: string, arr: NdArray): Promise<void> {
  const w = await NpyFileWriter.create(path, arr.dtype, arr.shape);
  try {
    await w.write(byteView(arr.data));
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.close();
}
