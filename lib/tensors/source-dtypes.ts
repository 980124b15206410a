/**
 * Decoding of raw checkpoint tensor bytes (C order, little-endian unless swapped first) into the NdArray
 * dtypes the rest of lib/ computes with, shared by the torch, Flax and safetensors readers: float16 and
 * bfloat16 widen to float32, int8/int16 to int32; bool bytes must be 0 or 1.
 */
import { BadInputError } from '../errors.js';
import type { SourceDType } from '../weights/source.js';
import type { NdArray } from './ndarray.js';

export const SOURCE_ITEMSIZE: Readonly<Record<SourceDType, number>> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Reverses each `itemsize`-byte element in place (for big-endian files). */
export function swapBytes(bytes: Uint8Array, itemsize: number): void {
  for (let i = 0; i + itemsize <= bytes.length; i += itemsize) bytes.subarray(i, i + itemsize).reverse();
}

/** IEEE half → float32 value. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A typed-array view of `bytes` when aligned, else of an aligned copy. */
function aligned(bytes: Uint8Array, itemsize: number): ArrayBuffer {
  if (bytes.byteOffset % itemsize === 0 && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
  return bytes.slice().buffer;
}

/**
 * Decodes `bytes` (exactly shape's elements of `dtype`, little-endian, C order) into an NdArray; the result
 * may share `bytes`' memory. `where` names the file and tensor in errors.
 */
export function decodeTensorBytes(
  dtype: SourceDType,
  shape: readonly number[],
  bytes: Uint8Array,
  where: string,
): NdArray {
  const n = bytes.length / SOURCE_ITEMSIZE[dtype];
  const dims = [...shape];
  const off = (b: ArrayBuffer): number => (b === bytes.buffer ? bytes.byteOffset : 0);
  switch (dtype) {
    case 'float64': {
      const b = aligned(bytes, 8);
      return { dtype, shape: dims, data: new Float64Array(b, off(b), n) };
    }
    case 'float32': {
      const b = aligned(bytes, 4);
      return { dtype, shape: dims, data: new Float32Array(b, off(b), n) };
    }
    case 'int64': {
      const b = aligned(bytes, 8);
      return { dtype, shape: dims, data: new BigInt64Array(b, off(b), n) };
    }
    case 'int32': {
      const b = aligned(bytes, 4);
      return { dtype, shape: dims, data: new Int32Array(b, off(b), n) };
    }
    case 'float16':
    case 'bfloat16': {
      const out = new Float32Array(n);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (dtype === 'bfloat16') {
        const bits = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      } else {
        for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      }
      return { dtype: 'float32', shape: dims, data: out };
    }
    case 'int16':
    case 'int8': {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dtype === 'int16' ? dv.getInt16(2 * i, true) : dv.getInt8(i);
      return { dtype: 'int32', shape: dims, data: out };
    }
    case 'bool':
      if (bytes.some((b) => b > 1))
        throw new BadInputError(`${where}: bool tensor holds values other than 0 and 1`);
      return { dtype, shape: dims, data: bytes };
    case 'uint8':
      return { dtype, shape: dims, data: bytes };
  }
}
