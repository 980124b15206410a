/**
 * The in-memory tensor every file format in lib/tensors reads into and writes from: a dtype, a shape and
 * one native typed array in C (row-major) order. Bool is stored as a Uint8Array of 0/1, as numpy does.
 * The host is assumed little-endian (checked once here) so typed-array views can be written verbatim.
 */
import { endianness } from 'node:os';

export type DType = 'bool' | 'uint8' | 'int32' | 'int64' | 'float32' | 'float64';
export type TypedData = Uint8Array | Int32Array | BigInt64Array | Float32Array | Float64Array;

export interface NdArray {
  dtype: DType;
  shape: number[];
  data: TypedData;
}

export const DTYPES: readonly DType[] = ['bool', 'uint8', 'int32', 'int64', 'float32', 'float64'];

export const ITEMSIZE: Readonly<Record<DType, number>> = {
  bool: 1,
  uint8: 1,
  int32: 4,
  int64: 8,
  float32: 4,
  float64: 8,
};

if (endianness() !== 'LE') {
  // Every reader and writer here hands typed-array bytes straight to disk; a big-endian host would need swaps.
  throw new Error('lib/tensors supports little-endian hosts only');
}

/** Number of elements of `shape`; throws if a dimension is not a non-negative integer or the product is unsafe. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new RangeError(`invalid dimension ${d} in shape [${shape.join(', ')}]`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new RangeError(`shape [${shape.join(', ')}] has too many elements`);
  }
  return n;
}

/** A zero-filled typed array of `length` elements for `dtype`. */
export function allocate(dtype: DType, length: number): TypedData {
  switch (dtype) {
    case 'bool':
    case 'uint8':
      return new Uint8Array(length);
    case 'int32':
      return new Int32Array(length);
    case 'int64':
      return new BigInt64Array(length);
    case 'float32':
      return new Float32Array(length);
    case 'float64':
      return new Float64Array(length);
  }
}

/** The bytes of a typed array, as a view (no copy). */
export function byteView(data: TypedData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function matchesDType(dtype: DType, data: TypedData): boolean {
  switch (dtype) {
    case 'bool':
    case 'uint8':
      return data instanceof Uint8Array;
    case 'int32':
      return data instanceof Int32Array;
    case 'int64':
      return data instanceof BigInt64Array;
    case 'float32':
      return data instanceof Float32Array;
    case 'float64':
      return data instanceof Float64Array;
  }
}

/** Builds an NdArray, allocating zeros when `data` is omitted; checks that data matches dtype and shape. */
export function ndarray(dtype: DType, shape: readonly number[], data?: TypedData): NdArray {
  const n = shapeSize(shape);
  const d = data ?? allocate(dtype, n);
  if (!matchesDType(dtype, d))
    throw new TypeError(`data is a ${d.constructor.name}, not storage for ${dtype}`);
  if (d.length !== n)
    throw new RangeError(`data has ${d.length} elements but shape [${shape.join(', ')}] needs ${n}`);
  return { dtype, shape: [...shape], data: d };
}
