/**
 * safetensors, the project's one checkpoint format: an 8-byte little-endian header length N, N bytes of
 * JSON ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}), then the tensor
 * bytes, little-endian, C order. Reading checks, like the reference implementation, that the offsets tile
 * the data section exactly (no gaps, overlaps or trailing bytes) and match each shape; files are read
 * tensor by tensor straight into the final arrays. Writing keeps the given tensor order and pads the
 * header with spaces to a multiple of 8 so the data section starts aligned.
 */
import { z } from 'zod';
import { BadInputError } from '../errors.js';
import type { SourceDType } from '../weights/source.js';
import type { FileHandle } from 'node:fs/promises';
import { openForReading, readFully, writePiecesAtomic } from './files.js';
import { ITEMSIZE, allocate, byteView, shapeSize } from './ndarray.js';
import type { DType, NdArray } from './ndarray.js';
import { SOURCE_ITEMSIZE } from './source-dtypes.js';

const ST_DTYPES = {
  F32: 'float32',
  F64: 'float64',
  I32: 'int32',
  I64: 'int64',
  U8: 'uint8',
  BOOL: 'bool',
} as const satisfies Record<string, DType>;
type StDType = keyof typeof ST_DTYPES;
/** What upstream checkpoints also use; read lazily and widened by `indexSafetensors` callers. */
const ST_SOURCE_DTYPES: Record<string, SourceDType> = {
  ...ST_DTYPES,
  F16: 'float16',
  BF16: 'bfloat16',
  I16: 'int16',
  I8: 'int8',
};
const ST_NAME = Object.fromEntries(Object.entries(ST_DTYPES).map(([k, v]) => [v, k])) as Record<
  DType,
  StDType
>;

/** The reference implementation refuses headers over 100 MB. */
const MAX_HEADER_BYTES = 100_000_000;

export interface Safetensors {
  tensors: Map<string, NdArray>;
  metadata: Record<string, string>;
}

const tensorInfo = z
  .object({
    dtype: z.string(),
    shape: z.array(z.number().int().nonnegative()),
    data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
  })
  .strict();
const metadataSchema = z.record(z.string(), z.string());

export interface Slot<D extends SourceDType = DType> {
  name: string;
  dtype: D;
  shape: number[];
  begin: number;
  end: number;
}

function bad(source: string, problem: string): BadInputError {
  return new BadInputError(`${source}: ${problem}`);
}

function headerLength(first8: Uint8Array, totalSize: number, source: string): number {
  if (totalSize < 8) throw bad(source, `truncated: ${totalSize} bytes is too short for a safetensors file`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    throw bad(source, `safetensors header claims ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  if (Number(n) > totalSize - 8)
    throw bad(source, `truncated: header claims ${n} bytes but only ${totalSize - 8} follow`);
  return Number(n);
}

/** Validates the JSON header against a data section of `dataLength` bytes; returns slots in header order. */
function parseHeader<D extends SourceDType = DType>(
  json: Uint8Array,
  dataLength: number,
  source: string,
  dtypes: Readonly<Record<string, D>>,
): { slots: Slot<D>[]; metadata: Record<string, string> } {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw bad(source, `safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw bad(source, 'safetensors header is not a JSON object');
  let metadata: Record<string, string> = {};
  const slots: Slot<D>[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (name === '__metadata__') {
      const m = metadataSchema.safeParse(value);
      if (!m.success) throw bad(source, '__metadata__ must map strings to strings');
      metadata = m.data;
      continue;
    }
    const t = tensorInfo.safeParse(value);
    if (!t.success) throw bad(source, `tensor '${name}' has a malformed entry: ${JSON.stringify(value)}`);
    if (!Object.hasOwn(dtypes, t.data.dtype)) {
      throw bad(
        source,
        `tensor '${name}' has unsupported dtype '${t.data.dtype}' (supported: ${Object.keys(dtypes).join(', ')})`,
      );
    }
    const dtype = dtypes[t.data.dtype]!;
    const [begin, end] = t.data.data_offsets;
    let bytes: number;
    try {
      bytes = shapeSize(t.data.shape) * SOURCE_ITEMSIZE[dtype];
    } catch (e) {
      throw bad(source, `tensor '${name}': ${(e as Error).message}`);
    }
    if (end < begin || end - begin !== bytes) {
      throw bad(
        source,
        `tensor '${name}' has data_offsets [${begin}, ${end}] but shape [${t.data.shape.join(', ')}] ${t.data.dtype} needs ${bytes} bytes`,
      );
    }
    slots.push({ name, dtype, shape: t.data.shape, begin, end });
  }
  const byOffset = [...slots].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const s of byOffset) {
    if (s.begin !== at)
      throw bad(
        source,
        `tensor '${s.name}' starts at ${s.begin}, expected ${at} (offsets must tile the data without gaps or overlaps)`,
      );
    at = s.end;
  }
  if (at !== dataLength) throw bad(source, `tensors cover ${at} data bytes but the file holds ${dataLength}`);
  return { slots, metadata };
}

/** Parses a safetensors file held in memory. */
export function parseSafetensors(buf: Uint8Array, source: string): Safetensors {
  const n = headerLength(buf.subarray(0, 8), buf.length, source);
  const start = 8 + n;
  const { slots, metadata } = parseHeader(buf.subarray(8, start), buf.length - start, source, ST_DTYPES);
  const tensors = new Map<string, NdArray>();
  for (const s of slots) {
    const data = allocate(s.dtype, shapeSize(s.shape));
    byteView(data).set(buf.subarray(start + s.begin, start + s.end));
    tensors.set(s.name, checkBool({ dtype: s.dtype, shape: s.shape, data }, s.name, source));
  }
  return { tensors, metadata };
}

function checkBool(arr: NdArray, name: string, source: string): NdArray {
  if (arr.dtype === 'bool' && (arr.data as Uint8Array).some((b) => b > 1))
    throw bad(source, `BOOL tensor '${name}' holds values other than 0 and 1`);
  return arr;
}

/**
 * The header of an open safetensors file, for reading tensors one at a time: slots in header order with
 * `begin`/`end` relative to `dataStart`; also accepts F16, BF16, I16 and I8.
 */
export async function indexSafetensors(
  fh: FileHandle,
  path: string,
): Promise<{ slots: Slot<SourceDType>[]; metadata: Record<string, string>; dataStart: number }> {
  const { json, dataBytes, dataStart } = await readHeaderBytes(fh, path);
  return { ...parseHeader(json, dataBytes, path, ST_SOURCE_DTYPES), dataStart };
}

/** The JSON header's bytes, and where the data section starts and how long it is. */
async function readHeaderBytes(
  fh: FileHandle,
  path: string,
): Promise<{ json: Uint8Array; dataStart: number; dataBytes: number }> {
  const size = (await fh.stat()).size;
  const first8 = new Uint8Array(8);
  await readFully(fh, first8, 0);
  const n = headerLength(first8, size, path);
  const json = new Uint8Array(n);
  await readFully(fh, json, 8);
  return { json, dataStart: 8 + n, dataBytes: size - 8 - n };
}

/** Reads a safetensors file tensor by tensor into the final arrays. */
export async function readSafetensors(path: string): Promise<Safetensors> {
  const fh = await openForReading(path);
  try {
    const { json, dataStart: start, dataBytes } = await readHeaderBytes(fh, path);
    const { slots, metadata } = parseHeader(json, dataBytes, path, ST_DTYPES);
    const tensors = new Map<string, NdArray>();
    for (const s of slots) {
      const data = allocate(s.dtype, shapeSize(s.shape));
      const got = await readFully(fh, byteView(data), start + s.begin);
      if (got !== s.end - s.begin) throw bad(path, `truncated while reading tensor '${s.name}'`);
      tensors.set(s.name, checkBool({ dtype: s.dtype, shape: s.shape, data }, s.name, path));
    }
    return { tensors, metadata };
  } finally {
    await fh.close();
  }
}

type TensorInput = Map<string, NdArray> | Iterable<readonly [string, NdArray]>;

/** Header bytes (length prefix + padded JSON) and the data pieces, in order. */
function layout(tensors: TensorInput, metadata: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const [name, arr] of tensors) {
    if (name === '__metadata__' || Object.hasOwn(header, name))
      throw new RangeError(`invalid or duplicate tensor name '${name}'`);
    const bytes = byteView(arr.data);
    if (bytes.length !== shapeSize(arr.shape) * ITEMSIZE[arr.dtype])
      throw new RangeError(`tensor '${name}': data does not match shape`);
    header[name] = { dtype: ST_NAME[arr.dtype], shape: arr.shape, data_offsets: [at, at + bytes.length] };
    at += bytes.length;
    pieces.push(bytes);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  return [prefix, jsonBytes, ...pieces];
}

/** A whole safetensors file in memory. */
export function encodeSafetensors(tensors: TensorInput, metadata: Record<string, string> = {}): Uint8Array {
  const pieces = layout(tensors, metadata);
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Writes a safetensors file atomically, streaming each tensor's bytes without concatenating them. */
export async function writeSafetensors(
  path: string,
  tensors: TensorInput,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writePiecesAtomic(path, layout(tensors, metadata));
}
