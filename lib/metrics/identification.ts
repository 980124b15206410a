/**
 * 2-way identification (spec §5.2, §5.5; the authors' pair_wise_score2 and clip_metric). For prediction i,
 * the score is the fraction of other targets j ≠ i that it matches worse than its own target: with
 * s = measure(pred_i, ·), count j where s(target_i) beats s(target_j) strictly (NaN never beats). Mean over
 * i; chance 0.5. Feature 2-way is the same count on the Pearson correlation matrix of features.
 */
import { BadInputError } from '../errors.js';
import { checkPaired, item, mean, pearson, type Items, type MetricResult } from './common.js';

export type PixelMeasure = 'mse' | 'pcc' | 'snr' | 'mse_uint8wrap' | 'snr_uint8wrap';

export interface IdentificationResult extends MetricResult {
  perItem: number[];
}

const LOWER_IS_BETTER: Record<PixelMeasure | 'lpips', boolean> = {
  mse: true,
  mse_uint8wrap: true,
  lpips: true,
  pcc: false,
  snr: false,
  snr_uint8wrap: false,
};

/** Mean squared difference. */
export function mse(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += (a[k]! - b[k]!) ** 2;
  return s / a.length;
}

/** 10·log10(Σ target² / Σ (pred − target)²), the authors' snr_metric. */
export function snr(pred: Float64Array, target: Float64Array): number {
  let signal = 0;
  let noise = 0;
  for (let k = 0; k < pred.length; k++) {
    signal += target[k]! ** 2;
    noise += (pred[k]! - target[k]!) ** 2;
  }
  return 10 * Math.log10(signal / noise);
}

/**
 * x mod 256 in 0..255 for an integer x of int32 range: what a numpy uint8 holds after an operation that overflows
 * it. A bit mask, not `%`: these run over every pixel of every item pair, and V8's float modulo is ~10x slower.
 */
const wrap = (x: number): number => x & 255;

/**
 * The authors' mse_metric on uint8 arrays, as numpy computes it: img1 − img2 and its square both wrap modulo
 * 256 (uint8 arithmetic), then the mean.
 */
export function mseUint8Wrap(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) {
    const d = wrap(a[k]! - b[k]!);
    s += wrap(d * d);
  }
  return s / a.length;
}

/** The authors' snr_metric on uint8 arrays: squares and the difference wrap modulo 256, np.sum does not. */
export function snrUint8Wrap(pred: Float64Array, target: Float64Array): number {
  let signal = 0;
  let noise = 0;
  for (let k = 0; k < pred.length; k++) {
    const t = target[k]!;
    const d = wrap(pred[k]! - t);
    signal += wrap(t * t);
    noise += wrap(d * d);
  }
  return 10 * Math.log10(signal / noise);
}

const MEASURES: Record<PixelMeasure, (pred: Float64Array, target: Float64Array) => number> = {
  mse,
  pcc: (a, b) => pearson(a, b),
  snr,
  mse_uint8wrap: mseUint8Wrap,
  snr_uint8wrap: snrUint8Wrap,
};

/**
 * 2-way identification from a score matrix m[i·n + j] = measure(pred_i, target_j).
 * `lowerIsBetter` for distances (MSE, LPIPS), not for similarities (PCC, SNR).
 */
export function twoWayFromMatrix(m: Float64Array, n: number, lowerIsBetter: boolean): IdentificationResult {
  if (n < 2) throw new BadInputError(`2-way identification needs at least 2 items, got ${n}`);
  if (m.length !== n * n) throw new BadInputError(`score matrix has ${m.length} entries, expected ${n}x${n}`);
  const perItem: number[] = [];
  for (let i = 0; i < n; i++) {
    const own = m[i * n + i]!;
    let wins = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const other = m[i * n + j]!;
      if (lowerIsBetter ? own < other : own > other) wins++;
    }
    perItem.push(wins / (n - 1));
  }
  return { value: mean(perItem), chance: 0.5, perItem };
}

/** Pair-wise 2-way identification of predictions against targets under a pixel measure. */
export function twoWayIdentification(
  pred: Items,
  target: Items,
  measure: PixelMeasure,
): IdentificationResult {
  checkPaired(pred, target, 2);
  const n = pred.count;
  const f = MEASURES[measure];
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = f(item(pred, i), item(target, j));
  return twoWayFromMatrix(m, n, LOWER_IS_BETTER[measure]);
}

/** LPIPS 2-way identification with a supplied perceptual distance network (lower is better). */
export async function twoWayLpips(
  pred: Items,
  target: Items,
  distance: (pred: Float64Array, target: Float64Array) => Promise<number>,
): Promise<IdentificationResult> {
  checkPaired(pred, target, 2);
  const n = pred.count;
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) m[i * n + j] = await distance(item(pred, i), item(target, j));
  return twoWayFromMatrix(m, n, LOWER_IS_BETTER.lpips);
}

/**
 * Feature 2-way (clip_metric): R[k][j] = Pearson(target_k, pred_j) over the flattened features; for column
 * j count rows k with R[k][j] < R[j][j], and divide the mean count by n − 1.
 */
export function featureTwoWay(pred: Items, target: Items): IdentificationResult {
  checkPaired(pred, target, 2);
  const n = pred.count;
  const perItem: number[] = [];
  for (let j = 0; j < n; j++) {
    const own = pearson(item(target, j), item(pred, j));
    let wins = 0;
    for (let k = 0; k < n; k++) if (k !== j && pearson(item(target, k), item(pred, j)) < own) wins++;
    perItem.push(wins / (n - 1));
  }
  return { value: mean(perItem), chance: 0.5, perItem };
}
