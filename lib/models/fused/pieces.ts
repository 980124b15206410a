/**
 * Pieces of the fused ops' hand-written backward passes, over rows x [N, D]: each forward returns what its
 * backward needs. On the native backend's eager path every op costs ~10 µs of dispatch, which dominates small
 * models, so these are written for few kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { WeightBias } from '../layers.js';

/** Scalar constants are uploaded once, not on every op that uses them. */
const constants = new Map<number, tf.Scalar>();
export function c(value: number): tf.Scalar {
  let s = constants.get(value);
  if (!s) {
    s = tf.keep(tf.scalar(value));
    constants.set(value, s);
  }
  return s;
}

/**
 * Reductions with constant operands, cached per size. rowMeans: one matmul beat tfjs-node's Mean (a cast
 * plus an Eigen reduction: two kernels) at every size measured, 128x64 to 1120x1024. columnSums: from
 * COLUMN_SUMS_BY_EINSUM elements up, the contraction ones[N]·x (one Einsum kernel, a [D] vector out) is 2-6x
 * faster than Eigen's column reduction; below it the plain Sum is.
 */
const COLUMN_SUMS_BY_EINSUM = 1 << 16;
const vectors = new Map<string, tf.Tensor>();
function constant(shape: number[], value: number): tf.Tensor {
  const key = `${shape}:${value}`;
  let v = vectors.get(key);
  if (!v) {
    // uploaded, not filled by a kernel: a new size (the masked rows of a MaskGIT batch vary) adds no kernel call
    v = tf.keep(tf.tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value), shape));
    vectors.set(key, v);
  }
  return v;
}

/** Mean of each row of x [N, D] -> [N, 1]. */
function rowMeans(x: tf.Tensor): tf.Tensor {
  const d = x.shape[1] as number;
  return tf.matMul(x as tf.Tensor2D, constant([d, 1], 1 / d) as tf.Tensor2D);
}

/** Σ over the rows of x [N, D] -> [D] (bias and layer-norm parameter gradients). */
export function columnSums(x: tf.Tensor): tf.Tensor {
  if (x.size < COLUMN_SUMS_BY_EINSUM) return tf.sum(x, 0);
  return tf.einsum('n,nd->d', constant([x.shape[0] as number], 1), x);
}

/** Layer norm over the last axis of x [N, D]; also returns x̂ [N, D] and 1/σ [N, 1] for the backward. */
export function lnForward(x: tf.Tensor, norm: WeightBias, eps: number) {
  const xc = tf.sub(x, rowMeans(x));
  const rstd = tf.rsqrt(tf.add(rowMeans(tf.square(xc)), c(eps)));
  const xhat = tf.mul(xc, rstd);
  return { y: tf.add(tf.mul(xhat, norm.weight), norm.bias), xhat, rstd };
}

/** Gradients of layer norm: dx = (1/σ)·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = dy·g; dg = Σ dy·x̂; db = Σ dy. */
export function lnBackward(
  dy: tf.Tensor,
  { xhat, rstd }: { xhat: tf.Tensor; rstd: tf.Tensor },
  g: tf.Tensor,
) {
  const dxhat = tf.mul(dy, g);
  const centred = tf.sub(dxhat, rowMeans(dxhat));
  const dx = tf.mul(tf.sub(centred, tf.mul(xhat, rowMeans(tf.mul(dxhat, xhat)))), rstd);
  return { dx, dg: columnSums(tf.mul(dy, xhat)), db: columnSums(dy) };
}

/**
 * From this many weights up, dy @ Wᵀ is faster as an explicit transpose and a plain matmul: Eigen's
 * transpose_b kernel was 20-30% slower at the paper's 1024-wide layers, while for small layers the
 * extra op costs more than it saves.
 */
const TRANSPOSE_FIRST = 1 << 18;

/** Gradients of y = x @ W + b: dx = dy @ Wᵀ, dW = xᵀ @ dy, db = Σ_rows dy. */
export function linearBackward(dy: tf.Tensor, x: tf.Tensor, w: tf.Tensor) {
  const [d2, w2] = [dy as tf.Tensor2D, w as tf.Tensor2D];
  return {
    dx: w.size >= TRANSPOSE_FIRST ? tf.matMul(d2, tf.transpose(w2)) : tf.matMul(d2, w2, false, true),
    dw: tf.matMul(x as tf.Tensor2D, d2, true, false),
    db: columnSums(dy),
  };
}

/** Exact GELU, u·Φ(u); returns Φ(u) too, which the backward reuses. */
export function geluForward(u: tf.Tensor) {
  const cdf = tf.add(tf.mul(tf.erf(tf.mul(u, c(Math.SQRT1_2))), c(0.5)), c(0.5));
  return { y: tf.mul(u, cdf), cdf };
}

/** d/du [u·Φ(u)] = Φ(u) + u·φ(u), φ(u) = exp(−u²/2)/√(2π). */
export function geluBackward(dy: tf.Tensor, u: tf.Tensor, cdf: tf.Tensor): tf.Tensor {
  const pdf = tf.mul(tf.exp(tf.mul(tf.square(u), c(-0.5))), c(1 / Math.sqrt(2 * Math.PI)));
  return tf.mul(dy, tf.add(cdf, tf.mul(u, pdf)));
}
