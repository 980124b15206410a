/**
 * Float64-accurate matrix products computed with the tfjs backend's float32 matmul (an Ozaki-style split).
 *
 * Why: the ridge products dominate its cost and tfjs only multiplies in float32. Used where TensorFlow's own
 * float64 kernels cannot run (the wasm and cpu backends; see ridge.ts). Plain float32 Gram entries
 * are off by 5e-7 to 1e-6 of the largest entry at 1200-4803 samples, and a two-piece split (products to
 * ≈1e-9) still left ridge coefficients up to 2.5e-6 away from scikit-learn on offset, correlated data
 * (condition number ≈ 7e3): the solve amplifies product errors by the condition number. This three-piece
 * split keeps them below 1e-7 there.
 * How: every row of the left operand and column of the right one is scaled by a power of two into (-1, 1)
 * and split as x = h1 + h2 + l, where h1 is an integer multiple of 2^-B (B = SLICE_BITS), h2 one of 2^-2B,
 * and l the float32 remainder (below 2^-2B); r = fl32(h2 + l). Then
 *   x·x' = h1·h1' + (h1·h2' + h2·h1') + (h1·l' + l·h1' + r·r') + O(2^-4B)
 * - The first two groups are EXACT in float32 when the inner dimension is at most EXACT_CHUNK =
 *   2^(24 - 2B): every product and partial sum is an integer multiple of one power of two, below 2^24 in
 *   magnitude, so nothing rounds whatever the backend's summation order. Longer inner dimensions are cut
 *   into chunks whose exact results are summed here in float64.
 * - The last group is 2^-2B the size of the result, so its float32 rounding costs about 2^-(24 + 2B)
 *   relative to the products of the operands' row and column maxima.
 * Cost: six float32 matmuls per product (four for a Gram) plus O(size) JS work to split and rescale.
 */
import * as tf from '@tensorflow/tfjs';
import { mat, type Mat } from './matrix.js';

const SLICE_BITS = 7;
/** Longest inner dimension for which the h1·h1' and h1·h2' + h2·h1' products are exact. */
const EXACT_CHUNK = 2 ** (24 - 2 * SLICE_BITS);
/** Adding then subtracting 1.5·2^52 rounds a float64 below 2^51 in magnitude to an integer (fast Math.round). */
const ROUNDER = 6755399441055744;

/** op(mat): the matrix itself or its transpose, so transposed operands cost no JS copy. */
export interface Operand {
  mat: Mat;
  transposed: boolean;
}

export function op(m: Mat, transposed = false): Operand {
  return { mat: m, transposed };
}

function logicalShape(a: Operand): [number, number] {
  return a.transposed ? [a.mat.cols, a.mat.rows] : [a.mat.rows, a.mat.cols];
}

/** Power-of-two exponent e with maxAbs·2^-e in [0.5, 1); 0 for an all-zero vector. */
function exponentOf(maxAbs: number): number {
  if (maxAbs === 0) return 0;
  let e = Math.floor(Math.log2(maxAbs)) + 1;
  // Math.log2 can be one off near powers of two.
  while (maxAbs * 2 ** -e >= 1) e++;
  while (maxAbs * 2 ** -e < 0.5) e--;
  return e;
}

/**
 * A backend tensor standing for op(t). The native backend multiplies transposed operands at full speed,
 * so there the transpose stays a matMul flag; other backends get a transposed copy (wasm's transposed
 * matmul measured 10-20x slower than its plain one).
 */
interface Oriented {
  t: tf.Tensor2D;
  transposed: boolean;
}

/** The split of one operand, plus the power-of-two exponent of each scaled row or column. */
interface Pieces {
  exps: Int32Array;
  h1: Oriented;
  h2: Oriented;
  lo: Oriented;
  /** fl32(h2 + lo) */
  rest: Oriented;
}

const PIECES = ['h1', 'h2', 'lo', 'rest'] as const;

function mm(a: Oriented, b: Oriented): tf.Tensor2D {
  return tf.matMul(a.t, b.t, a.transposed, b.transposed);
}

function logicalRows(o: Oriented): number {
  return o.t.shape[o.transposed ? 1 : 0];
}

/** Columns [c0, c0 + kc) of a left operand or rows of a right one: the inner dimension of a product. */
function cutInner(o: Oriented, side: 'left' | 'right', c0: number, kc: number): Oriented {
  const [r, c] = o.t.shape;
  const alongStoredCols = (side === 'left') !== o.transposed;
  const t = alongStoredCols ? tf.slice(o.t, [0, c0], [r, kc]) : tf.slice(o.t, [c0, 0], [kc, c]);
  return { t, transposed: o.transposed };
}

/** Scales `m` per storage row or column, splits it, and uploads the pieces in storage layout. */
function splitUpload(m: Mat, scaleRows: boolean): Pieces {
  const { rows, cols, data } = m;
  const exps = new Int32Array(scaleRows ? rows : cols);
  const maxAbs = new Float64Array(exps.length);
  for (let i = 0; i < rows; i++) {
    const r = i * cols;
    if (scaleRows) {
      let mx = 0;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, Math.abs(data[r + j]!));
      maxAbs[i] = mx;
    } else {
      for (let j = 0; j < cols; j++) maxAbs[j] = Math.max(maxAbs[j]!, Math.abs(data[r + j]!));
    }
  }
  // Multipliers map x to y = x·2^(B - e), so h1 = round(y) and the pieces are rescaled by 2^-B on store.
  const mult = new Float64Array(exps.length);
  for (let s = 0; s < exps.length; s++) {
    exps[s] = exponentOf(maxAbs[s]!);
    mult[s] = 2 ** (SLICE_BITS - exps[s]!);
  }
  const inv1 = 2 ** -SLICE_BITS;
  const scale2 = 2 ** SLICE_BITS;
  const inv2 = 2 ** (-2 * SLICE_BITS);
  const h1 = new Float32Array(rows * cols);
  const h2 = new Float32Array(rows * cols);
  const lo = new Float32Array(rows * cols);
  const rest = new Float32Array(rows * cols);
  const rowMult = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const r = i * cols;
    if (scaleRows) rowMult.fill(mult[i]!);
    const mj = scaleRows ? rowMult : mult;
    for (let j = 0; j < cols; j++) {
      const y = data[r + j]! * mj[j]!;
      const a = y + ROUNDER - ROUNDER;
      const z = (y - a) * scale2; // exact: y − a has at most 53 − B significant bits left
      const b = z + ROUNDER - ROUNDER;
      h1[r + j] = a * inv1;
      h2[r + j] = b * inv2;
      lo[r + j] = (z - b) * inv2;
      rest[r + j] = z * inv2;
    }
  }
  const up = (v: Float32Array): Oriented => ({ t: tf.tensor2d(v, [rows, cols]), transposed: false });
  return { exps, h1: up(h1), h2: up(h2), lo: up(lo), rest: up(rest) };
}

function disposePieces(p: Pieces): void {
  tf.dispose(PIECES.map((k) => p[k].t));
}

/**
 * The transposed pieces: a flipped flag sharing the tensor on the native backend (disposing a tensor twice
 * is a no-op in tfjs), a transposed copy elsewhere.
 */
function transposedPieces(p: Pieces): Pieces {
  const native = tf.getBackend() === 'tensorflow';
  const flip = (o: Oriented): Oriented =>
    native ? { t: o.t, transposed: !o.transposed } : { t: tf.transpose(o.t), transposed: o.transposed };
  return { exps: p.exps, h1: flip(p.h1), h2: flip(p.h2), lo: flip(p.lo), rest: flip(p.rest) };
}

/** acc += values of t, then disposes t. */
async function addTensor(acc: Float64Array, t: tf.Tensor): Promise<void> {
  const v = await t.data();
  t.dispose();
  for (let i = 0; i < acc.length; i++) acc[i]! += v[i]!;
}

/** acc = (acc + values of t)·2^(rowExps[i] + colExps[j]) entry-wise, then disposes t. */
async function addTensorAndUnscale(
  acc: Float64Array,
  t: tf.Tensor,
  rowExps: Int32Array,
  colExps: Int32Array,
) {
  const v = await t.data();
  t.dispose();
  const n = colExps.length;
  const colMult = Float64Array.from(colExps, (e) => 2 ** e);
  for (let i = 0; i < rowExps.length; i++) {
    const rm = 2 ** rowExps[i]!;
    const r = i * n;
    for (let j = 0; j < n; j++) acc[r + j] = (acc[r + j]! + v[r + j]!) * (rm * colMult[j]!);
  }
}

/**
 * Adds the exact groups into acc, chunk by chunk along the inner dimension: `parts(cut)` returns the exact
 * tensors of one chunk, given `cut` that restricts a left or right operand to the chunk.
 */
async function addExactChunks(
  k: number,
  acc: Float64Array,
  parts: (cut: (o: Oriented, side: 'left' | 'right') => Oriented) => tf.Tensor[],
): Promise<void> {
  for (let c0 = 0; c0 < k; c0 += EXACT_CHUNK) {
    const kc = Math.min(EXACT_CHUNK, k - c0);
    const exact = tf.tidy(() => parts((o, side) => (kc === k ? o : cutInner(o, side, c0, kc))));
    for (const t of exact) await addTensor(acc, t);
  }
}

/** a·b for split left pieces (m x k, row-scaled) and right pieces (k x n, column-scaled). */
async function productOfPieces(a: Pieces, b: Pieces): Promise<Float64Array> {
  const m = logicalRows(a.h1);
  const k = logicalRows(b.h1);
  const acc = new Float64Array(m * b.exps.length);
  await addExactChunks(k, acc, (cut) => [
    mm(cut(a.h1, 'left'), cut(b.h1, 'right')),
    tf.add(mm(cut(a.h1, 'left'), cut(b.h2, 'right')), mm(cut(a.h2, 'left'), cut(b.h1, 'right'))),
  ]);
  const small = tf.tidy(() => tf.addN([mm(a.h1, b.lo), mm(a.lo, b.h1), mm(a.rest, b.rest)]));
  await addTensorAndUnscale(acc, small, a.exps, b.exps);
  return acc;
}

/** xᵀx for split pieces of x (n x p, column-scaled) and of xᵀ; symmetric by construction. */
async function gramOfPieces(x: Pieces, xT: Pieces): Promise<Float64Array> {
  const n = logicalRows(x.h1);
  const p = x.exps.length;
  const acc = new Float64Array(p * p);
  // h1ᵀh2 + h2ᵀh1 = N + Nᵀ and h1ᵀl + lᵀh1 + rᵀr = M + Mᵀ with M = h1ᵀl + ½rᵀr: a float32 sum with its
  // own transpose is exactly symmetric.
  await addExactChunks(n, acc, (cut) => {
    const nn = mm(cut(xT.h1, 'left'), cut(x.h2, 'right'));
    return [mm(cut(xT.h1, 'left'), cut(x.h1, 'right')), tf.add(nn, tf.transpose(nn))];
  });
  const small = tf.tidy(() => {
    const mmT = tf.add(mm(xT.h1, x.lo), tf.mul(mm(xT.rest, x.rest), 0.5));
    return tf.add(mmT, tf.transpose(mmT));
  });
  await addTensorAndUnscale(acc, small, x.exps, x.exps);
  return acc;
}

/** Split pieces of op(a) oriented as op(a), scaled per logical row (left operand) or column (right). */
function orientedPieces(a: Operand, side: 'left' | 'right'): { pieces: Pieces; owned: Pieces[] } {
  // A logical row of op(a) is a storage column when transposed, and vice versa.
  const scaleRows = side === 'left' ? !a.transposed : a.transposed;
  const stored = splitUpload(a.mat, scaleRows);
  if (!a.transposed) return { pieces: stored, owned: [stored] };
  const t = transposedPieces(stored);
  return { pieces: t, owned: [stored, t] };
}

/** op(a)·op(b) to float64 accuracy. */
export async function preciseMatMul(a: Operand, b: Operand): Promise<Mat> {
  const [m, k] = logicalShape(a);
  const [k2, n] = logicalShape(b);
  if (k !== k2) throw new RangeError(`matmul shapes ${m}x${k} and ${k2}x${n} do not align`);
  const left = orientedPieces(a, 'left');
  const right = orientedPieces(b, 'right');
  try {
    return mat(m, n, await productOfPieces(left.pieces, right.pieces));
  } finally {
    [...left.owned, ...right.owned].forEach(disposePieces);
  }
}

/** op(x)ᵀ·op(x) to float64 accuracy, exactly symmetric. */
export async function preciseGram(x: Operand): Promise<Mat> {
  const p = logicalShape(x)[1];
  const right = orientedPieces(x, 'right');
  const left = transposedPieces(right.pieces);
  try {
    return mat(p, p, await gramOfPieces(right.pieces, left));
  } finally {
    [...right.owned, left].forEach(disposePieces);
  }
}

/** The ridge normal-equation products XᵀX and XᵀY (X: n x p, Y: n x t), sharing the split of X. */
export async function normalEquations(x: Mat, y: Mat): Promise<{ gram: Mat; cross: Mat }> {
  if (x.rows !== y.rows) throw new RangeError(`X has ${x.rows} rows but Y has ${y.rows}`);
  // Column scaling of X serves both as the right operand of XᵀX and, transposed, as the left one of XᵀY.
  const sx = splitUpload(x, false);
  const sxT = transposedPieces(sx);
  const sy = splitUpload(y, false);
  try {
    const gram = mat(x.cols, x.cols, await gramOfPieces(sx, sxT));
    const cross = mat(x.cols, y.cols, await productOfPieces(sxT, sy));
    return { gram, cross };
  } finally {
    [sx, sxT, sy].forEach(disposePieces);
  }
}
