/**
 * Layout conversions from upstream conventions to the project's (lib/models/layers.ts): Linear weights [in, out],
 * conv kernels [kh, kw, in, out] (2-D) or [k, in, out] (1-D). PyTorch stores Linear [out, in] and conv
 * [out, in, kh, kw]; Flax already uses the project's layouts.
 */
import { BadInputError } from '../errors.js';
import { ndarray, type NdArray } from '../tensors/ndarray.js';

function float32(a: NdArray, what: string): Float32Array {
  if (!(a.data instanceof Float32Array))
    throw new BadInputError(`${what}: expected floating-point values, got ${a.dtype}`);
  return a.data;
}

/** A general axis permutation of a float32 array: out.shape[i] = a.shape[perm[i]]. */
export function permute(a: NdArray, perm: readonly number[], what: string): NdArray {
  const src = float32(a, what);
  const rank = a.shape.length;
  if (perm.length !== rank)
    throw new BadInputError(`${what}: expected rank ${perm.length}, got shape [${a.shape.join(', ')}]`);
  const outShape = perm.map((p) => a.shape[p] as number);
  const srcStrides = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) {
    srcStrides[i] = s;
    s *= a.shape[i] as number;
  }
  const stepIn = perm.map((p) => srcStrides[p] as number);
  const out = new Float32Array(src.length);
  const idx = new Array<number>(rank).fill(0);
  let offset = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = src[offset] as number;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      offset += stepIn[d] as number;
      if (idx[d]! < (outShape[d] as number)) break;
      offset -= (stepIn[d] as number) * (outShape[d] as number);
      idx[d] = 0;
    }
  }
  return ndarray('float32', outShape, out);
}

/** PyTorch Linear [out, in] → [in, out]. */
export function linearFromTorch(a: NdArray, what: string): NdArray {
  if (a.shape.length !== 2)
    throw new BadInputError(`${what}: a Linear weight must be 2-D, got [${a.shape.join(', ')}]`);
  return permute(a, [1, 0], what);
}

/** PyTorch Conv2d [out, in, kh, kw] → [kh, kw, in, out]; Conv1d [out, in, k] → [k, in, out]. */
export function convFromTorch(a: NdArray, what: string): NdArray {
  if (a.shape.length === 4) return permute(a, [2, 3, 1, 0], what);
  if (a.shape.length === 3) return permute(a, [2, 1, 0], what);
  throw new BadInputError(`${what}: a conv weight must be 3-D or 4-D, got [${a.shape.join(', ')}]`);
}

/** Same values, new shape (element count must match). */
export function reshape(a: NdArray, shape: readonly number[], what: string): NdArray {
  const n = shape.reduce((x, y) => x * y, 1);
  if (n !== a.data.length)
    throw new BadInputError(`${what}: cannot view [${a.shape.join(', ')}] as [${shape.join(', ')}]`);
  return { ...a, shape: [...shape] };
}
