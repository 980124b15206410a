/**
 * Flax checkpoints written by flax.serialization (`to_bytes` / `msgpack_serialize`): one msgpack map of
 * str keys nesting down to leaves; an array leaf is ExtType 1 whose payload is itself msgpack
 * [shape, dtype name, C-order bytes] (ExtType 3, a numpy scalar, is the same with shape []); arrays over
 * 2^30 bytes are split into `{'__msgpack_chunked_array__': True, 'shape': {'0': d0, ...}, 'chunks':
 * {'0': flat array, ...}}`. The small decoder here walks the structure through a buffered file cursor
 * and only records where each array's bytes lie, so a tensor's bytes are read when it is read.
 */
import type { FileHandle } from 'node:fs/promises';
import { BadInputError } from '../errors.js';
import type { CheckpointSource, SourceDType, TensorRef } from '../weights/source.js';
import { openForReading, readFully } from './files.js';
import { shapeSize } from './ndarray.js';
import type { NdArray } from './ndarray.js';
import { SOURCE_ITEMSIZE, decodeTensorBytes } from './source-dtypes.js';

/** A byte range of the file that was skipped, not read. */
interface Range {
  t: 'range';
  offset: number;
  length: number;
}
interface Ext {
  t: 'ext';
  type: number;
  offset: number;
  length: number;
}
type MpValue = null | boolean | number | string | Range | Ext | MpValue[] | Map<string, MpValue>;

/** Longest string decoded (keys, dtype names); longer ones are not part of a Flax checkpoint. */
const MAX_STRING = 1 << 20;
const MAX_DEPTH = 64;
const CHUNK = 1 << 20;

class Cursor {
  pos = 0;
  private buf = new Uint8Array(0);
  private bufStart = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly path: string,
  ) {}

  fail(problem: string, at = this.pos): never {
    throw new BadInputError(`${this.path}: msgpack rejected at byte ${at}: ${problem}`);
  }

  async take(n: number): Promise<Uint8Array> {
    if (this.pos + n > this.size) this.fail('truncated file');
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      this.buf = new Uint8Array(Math.min(Math.max(n, CHUNK), this.size - this.pos));
      this.bufStart = this.pos;
      await readFully(this.fh, this.buf, this.pos);
    }
    const out = this.buf.subarray(this.pos - this.bufStart, this.pos - this.bufStart + n);
    this.pos += n;
    return out;
  }

  skip(n: number): Range {
    if (this.pos + n > this.size) this.fail('truncated file');
    const r: Range = { t: 'range', offset: this.pos, length: n };
    this.pos += n;
    return r;
  }

  async uint(n: 1 | 2 | 4 | 8): Promise<number> {
    const b = await this.take(n);
    const dv = new DataView(b.buffer, b.byteOffset, n);
    if (n === 1) return dv.getUint8(0);
    if (n === 2) return dv.getUint16(0);
    if (n === 4) return dv.getUint32(0);
    return this.safe(dv.getBigUint64(0));
  }

  async int(n: 1 | 2 | 4 | 8): Promise<number> {
    const b = await this.take(n);
    const dv = new DataView(b.buffer, b.byteOffset, n);
    if (n === 1) return dv.getInt8(0);
    if (n === 2) return dv.getInt16(0);
    if (n === 4) return dv.getInt32(0);
    return this.safe(dv.getBigInt64(0));
  }

  private safe(v: bigint): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
      this.fail(`integer ${v} is beyond 2^53`);
    return Number(v);
  }

  async str(n: number): Promise<string> {
    if (n > MAX_STRING) this.fail(`string of ${n} bytes`);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(await this.take(n));
    } catch (e) {
      if (e instanceof BadInputError) throw e;
      this.fail('string is not valid UTF-8');
    }
  }

  /** One msgpack value; bin payloads and ext payloads are skipped and returned as ranges. */
  async value(depth = 0): Promise<MpValue> {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH}`);
    const at = this.pos;
    const b = (await this.take(1))[0]!;
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.skip(await this.uint(1));
      case 0xc5:
        return this.skip(await this.uint(2));
      case 0xc6:
        return this.skip(await this.uint(4));
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        const length = await this.uint(b === 0xc7 ? 1 : b === 0xc8 ? 2 : 4);
        return this.ext(length);
      }
      case 0xca: {
        const x = await this.take(4);
        return new DataView(x.buffer, x.byteOffset, 4).getFloat32(0);
      }
      case 0xcb: {
        const x = await this.take(8);
        return new DataView(x.buffer, x.byteOffset, 8).getFloat64(0);
      }
      case 0xcc:
        return this.uint(1);
      case 0xcd:
        return this.uint(2);
      case 0xce:
        return this.uint(4);
      case 0xcf:
        return this.uint(8);
      case 0xd0:
        return this.int(1);
      case 0xd1:
        return this.int(2);
      case 0xd2:
        return this.int(4);
      case 0xd3:
        return this.int(8);
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        return this.ext(1 << (b - 0xd4));
      case 0xd9:
        return this.str(await this.uint(1));
      case 0xda:
        return this.str(await this.uint(2));
      case 0xdb:
        return this.str(await this.uint(4));
      case 0xdc:
        return this.array(await this.uint(2), depth);
      case 0xdd:
        return this.array(await this.uint(4), depth);
      case 0xde:
        return this.map(await this.uint(2), depth);
      case 0xdf:
        return this.map(await this.uint(4), depth);
      default:
        this.fail(`invalid type byte 0x${b.toString(16)}`, at);
    }
  }

  private async ext(length: number): Promise<Ext> {
    const type = await this.int(1);
    const r = this.skip(length);
    return { t: 'ext', type, offset: r.offset, length };
  }

  private async array(n: number, depth: number): Promise<MpValue[]> {
    const out: MpValue[] = [];
    for (let i = 0; i < n; i++) out.push(await this.value(depth + 1));
    return out;
  }

  private async map(n: number, depth: number): Promise<Map<string, MpValue>> {
    const out = new Map<string, MpValue>();
    for (let i = 0; i < n; i++) {
      const at = this.pos;
      const k = await this.value(depth + 1);
      if (typeof k !== 'string' && !(typeof k === 'number' && Number.isInteger(k)))
        this.fail('map keys must be str or int', at);
      out.set(String(k), await this.value(depth + 1));
    }
    return out;
  }
}

const DTYPES = new Set<string>(Object.keys(SOURCE_ITEMSIZE));

/** A Flax array: its bytes are one range, or several for a chunked array. */
class FlaxTensor implements TensorRef {
  constructor(
    readonly name: string,
    readonly dtype: SourceDType,
    readonly shape: readonly number[],
    private readonly ranges: Range[],
    private readonly fh: FileHandle,
    private readonly where: string,
  ) {}

  async read(): Promise<NdArray> {
    const out = new Uint8Array(shapeSize(this.shape) * SOURCE_ITEMSIZE[this.dtype]);
    let at = 0;
    for (const r of this.ranges) {
      if ((await readFully(this.fh, out.subarray(at, at + r.length), r.offset)) !== r.length)
        throw new BadInputError(`${this.where}: file truncated inside the array`);
      at += r.length;
    }
    return decodeTensorBytes(this.dtype, this.shape, out, this.where);
  }
}

/** Decodes an ExtType 1/3 payload: [shape, dtype name, bytes]; undefined for dtypes not read here. */
async function arrayLeaf(
  cur: Cursor,
  ext: Ext,
  where: string,
): Promise<{ shape: number[]; dtype: SourceDType; data: Range } | undefined> {
  cur.pos = ext.offset;
  const v = await cur.value();
  if (cur.pos !== ext.offset + ext.length || !Array.isArray(v) || v.length !== 3)
    throw new BadInputError(`${where}: array payload is not [shape, dtype, bytes]`);
  const [shape, dtype, data] = v;
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
  )
    throw new BadInputError(`${where}: array shape must be non-negative ints`);
  if (
    typeof dtype !== 'string' ||
    data === null ||
    typeof data !== 'object' ||
    !('t' in data) ||
    data.t !== 'range'
  )
    throw new BadInputError(`${where}: array payload is not [shape, dtype, bytes]`);
  if (!DTYPES.has(dtype)) return undefined;
  const dims = shape as number[];
  const need = shapeSize(dims) * SOURCE_ITEMSIZE[dtype as SourceDType];
  if (data.length !== need)
    throw new BadInputError(
      `${where}: ${data.length} data bytes but shape [${dims.join(', ')}] ${dtype} needs ${need}`,
    );
  return { shape: dims, dtype: dtype as SourceDType, data };
}

function isExt(v: MpValue | undefined, ...types: number[]): v is Ext {
  return (
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    !(v instanceof Map) &&
    v.t === 'ext' &&
    types.includes(v.type)
  );
}

/** JSON-like leaves (numbers, strings, bools, None, lists of them); undefined for anything else. */
function plainData(v: MpValue): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const items = v.map(plainData);
    return items.includes(undefined) ? undefined : items;
  }
  return undefined;
}

/** Opens a flax.serialization msgpack checkpoint: every array leaf by its '/'-joined path. */
export async function openFlaxMsgpack(path: string): Promise<CheckpointSource> {
  const fh = await openForReading(path);
  try {
    const cur = new Cursor(fh, (await fh.stat()).size, path);
    const root = await cur.value();
    if (cur.pos !== cur.size) cur.fail(`${cur.size - cur.pos} trailing bytes after the root map`);
    if (!(root instanceof Map))
      throw new BadInputError(`${path}: not a Flax msgpack checkpoint (the root is not a map)`);
    const tensors = new Map<string, TensorRef>();
    const extras: Record<string, unknown> = {};
    const walk = async (map: Map<string, MpValue>, prefix: string): Promise<void> => {
      for (const [k, v] of map) {
        const name = prefix + k;
        const where = `${path}: tensor '${name}'`;
        if (isExt(v, 1, 3)) {
          const leaf = await arrayLeaf(cur, v, where);
          if (leaf) tensors.set(name, new FlaxTensor(name, leaf.dtype, leaf.shape, [leaf.data], fh, where));
        } else if (v instanceof Map && v.has('__msgpack_chunked_array__')) {
          const t = await chunked(cur, v, where);
          if (t) tensors.set(name, new FlaxTensor(name, t.dtype, t.shape, t.ranges, fh, where));
        } else if (v instanceof Map) {
          await walk(v, `${name}/`);
        } else {
          const p = plainData(v);
          if (p !== undefined) extras[name] = p;
        }
      }
    };
    await walk(root, '');
    return { path, format: 'flax-msgpack', tensors, extras, close: () => fh.close() };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** A chunked array: flat chunks of one dtype whose bytes add up to the shape. */
async function chunked(
  cur: Cursor,
  v: Map<string, MpValue>,
  where: string,
): Promise<{ shape: number[]; dtype: SourceDType; ranges: Range[] } | undefined> {
  const byIndex = (m: MpValue | undefined, what: string): MpValue[] => {
    if (!(m instanceof Map)) throw new BadInputError(`${where}: chunked array has no '${what}' map`);
    return [...m.keys()].map((_, i) => {
      if (!m.has(String(i))) throw new BadInputError(`${where}: chunked array '${what}' lacks index ${i}`);
      return m.get(String(i))!;
    });
  };
  const shape = byIndex(v.get('shape'), 'shape');
  if (!shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0))
    throw new BadInputError(`${where}: chunked array shape must be non-negative ints`);
  const dims = shape as number[];
  const ranges: Range[] = [];
  let dtype: SourceDType | undefined;
  for (const chunk of byIndex(v.get('chunks'), 'chunks')) {
    if (!isExt(chunk, 1)) throw new BadInputError(`${where}: a chunk is not an array`);
    const leaf = await arrayLeaf(cur, chunk, where);
    if (!leaf) return undefined;
    if ((dtype ?? leaf.dtype) !== leaf.dtype) throw new BadInputError(`${where}: chunks differ in dtype`);
    dtype = leaf.dtype;
    ranges.push(leaf.data);
  }
  if (!dtype) throw new BadInputError(`${where}: chunked array has no chunks`);
  const bytes = ranges.reduce((n, r) => n + r.length, 0);
  const need = shapeSize(dims) * SOURCE_ITEMSIZE[dtype];
  if (bytes !== need)
    throw new BadInputError(
      `${where}: chunks hold ${bytes} bytes but shape [${dims.join(', ')}] ${dtype} needs ${need}`,
    );
  return { shape: dims, dtype, ranges };
}
