/**
 * Dense float64 matrices for the ridge solver: a row-major Mat, conversion from NdArray, and block copies.
 */
import { BadInputError } from '../errors.js';
import type { NdArray } from '../tensors/ndarray.js';

/** Row-major float64 matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: Float64Array): Mat {
  const d = data ?? new Float64Array(rows * cols);
  if (d.length !== rows * cols)
    throw new RangeError(`matrix data has ${d.length} elements, expected ${rows}x${cols}`);
  return { rows, cols, data: d };
}

/**
 * A 1-D or 2-D numeric NdArray as a float64 Mat (1-D becomes one column). `what` names the input in errors
 * (a CLI flag or an argument name); NaN or infinite entries and empty arrays are rejected.
 */
export function matFromNdArray(arr: NdArray, what: string): Mat {
  if (arr.shape.length !== 1 && arr.shape.length !== 2) {
    throw new BadInputError(`${what}: expected a 1-D or 2-D array, got shape [${arr.shape.join(', ')}]`);
  }
  if (arr.dtype === 'bool') throw new BadInputError(`${what}: expected numbers, got a bool array`);
  const rows = arr.shape[0] ?? 0;
  const cols = arr.shape.length === 2 ? (arr.shape[1] ?? 0) : 1;
  if (rows === 0 || cols === 0)
    throw new BadInputError(`${what}: empty array, shape [${arr.shape.join(', ')}]`);
  const out = new Float64Array(rows * cols);
  const src = arr.data;
  for (let i = 0; i < out.length; i++) {
    const v = Number(src[i]);
    if (!Number.isFinite(v)) {
      throw new BadInputError(
        `${what}: non-finite value ${v} at row ${Math.floor(i / cols)}, column ${i % cols}`,
      );
    }
    out[i] = v;
  }
  return mat(rows, cols, out);
}

/** Copy of rows [r0, r1) and columns [c0, c1) of `m`. */
export function block(m: Mat, r0: number, r1: number, c0: number, c1: number): Mat {
  const out = mat(r1 - r0, c1 - c0);
  for (let i = r0; i < r1; i++)
    out.data.set(m.data.subarray(i * m.cols + c0, i * m.cols + c1), (i - r0) * out.cols);
  return out;
}

/** Writes `src` into `dst` with its top-left corner at (r0, c0). */
export function setBlock(dst: Mat, src: Mat, r0: number, c0: number): void {
  for (let i = 0; i < src.rows; i++)
    dst.data.set(src.data.subarray(i * src.cols, (i + 1) * src.cols), (r0 + i) * dst.cols + c0);
}
