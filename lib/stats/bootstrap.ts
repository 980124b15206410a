/**
 * Bootstrap confidence intervals over test items, as scipy.stats.bootstrap computes them (one sample,
 * two-sided): the percentile interval and the bias-corrected and accelerated (BCa) interval of Efron &
 * Tibshirani (1993, §14.3, eq. 14.15), with z0 from the share of replicates below the estimate (ties count a
 * half) and the acceleration from the jackknife. The quantiles are numpy's default ('linear', Hyndman & Fan
 * type 7). The resample indices are drawn apart from the intervals, so that a test hands the same ones to SciPy.
 */
import type { Rng } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import { ndtr, ndtri } from './normal.js';

export type IntervalMethod = 'percentile' | 'bca';

export interface IntervalSettings {
  method: IntervalMethod;
  /** Bootstrap resamples (B). */
  resamples: number;
  /** Two-sided confidence level, e.g. 0.95. */
  level: number;
}

/** B resamples of n items with replacement: [B, n] row-major (numpy's rng.integers(0, n, (B, n)) layout). */
export function resampleIndices(n: number, resamples: number, rng: Rng): Int32Array {
  if (!Number.isInteger(n) || n < 2) throw new BadInputError(`a bootstrap needs at least 2 items, got ${n}`);
  if (!Number.isInteger(resamples) || resamples < 1)
    throw new BadInputError(`bootstrap resamples must be an integer >= 1, got ${resamples}`);
  const out = new Int32Array(resamples * n);
  for (let i = 0; i < out.length; i++) out[i] = rng.integer(0, n);
  return out;
}

/** numpy.quantile(sorted, q) with the default linear interpolation; `sorted` ascending. */
export function quantileSorted(sorted: Float64Array, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * numpy's pairwise summation (eight accumulators per block of up to 128, halves above): the same rounding as
 * np.sum and np.mean, so that a replicate mean equal to the estimate in exact arithmetic compares equal here
 * exactly when it does in SciPy (BCa's z0 counts such ties as a half).
 */
export function pairwiseSum(a: ArrayLike<number>, from = 0, n = a.length - from): number {
  if (n < 8) {
    let s = 0;
    for (let i = from; i < from + n; i++) s += a[i]!;
    return s;
  }
  if (n <= 128) {
    const r = [0, 1, 2, 3, 4, 5, 6, 7].map((j) => a[from + j]!);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j]! += a[from + i + j]!;
    let s = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) s += a[from + i]!;
    return s;
  }
  const half = Math.floor(n / 2) - (Math.floor(n / 2) % 8);
  return pairwiseSum(a, from, half) + pairwiseSum(a, from + half, n - half);
}

/** np.mean. */
export function mean(values: ArrayLike<number>): number {
  return pairwiseSum(values) / values.length;
}

/** The mean of each resample: replicate b is mean(values[indices[b, :]]). */
export function meanReplicates(values: Float64Array, indices: Int32Array): Float64Array {
  const n = values.length;
  const out = new Float64Array(indices.length / n);
  const row = new Float64Array(n);
  for (let b = 0; b < out.length; b++) {
    for (let k = 0; k < n; k++) row[k] = values[indices[b * n + k]!]!;
    out[b] = mean(row);
  }
  return out;
}

/** The mean with each item left out in turn (the jackknife replicates of the mean). */
export function jackknifeMeans(values: Float64Array): Float64Array {
  const n = values.length;
  const rest = new Float64Array(n - 1);
  return values.map((_, left) => {
    for (let k = 0, j = 0; k < n; k++) if (k !== left) rest[j++] = values[k]!;
    return mean(rest);
  });
}

/** The BCa interval's quantile levels (alpha_1, alpha_2) for an estimate, its replicates and jackknife. */
export function bcaLevels(
  estimate: number,
  replicates: Float64Array,
  jackknife: Float64Array,
  level: number,
): [number, number] {
  let below = 0;
  let atOrBelow = 0;
  for (const r of replicates) {
    if (r < estimate) below++;
    if (r <= estimate) atOrBelow++;
  }
  const z0 = ndtri((below + atOrBelow) / (2 * replicates.length));
  const n = jackknife.length;
  const dot = mean(jackknife);
  let num = 0;
  let den = 0;
  for (const t of jackknife) {
    const u = (n - 1) * (dot - t);
    num += u ** 3;
    den += u ** 2;
  }
  const a = num / n ** 3 / (den / n ** 2) ** 1.5 / 6;
  const zAlpha = ndtri((1 - level) / 2);
  const at = (z: number) => ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)));
  return [at(zAlpha), at(-zAlpha)];
}

/**
 * The interval from an estimate's bootstrap replicates (and, for BCa, its jackknife replicates). A degenerate
 * bootstrap (every replicate equal, e.g. every item scoring 1) gives the point [v, v] under both methods, where
 * SciPy's BCa gives NaN.
 */
export function bootstrapInterval(
  estimate: number,
  replicates: Float64Array,
  settings: Pick<IntervalSettings, 'method' | 'level'>,
  jackknife?: Float64Array,
): [number, number] {
  const sorted = Float64Array.from(replicates).sort();
  if (sorted[0] === sorted[sorted.length - 1]) return [sorted[0]!, sorted[0]!];
  let levels: [number, number] = [(1 - settings.level) / 2, (1 + settings.level) / 2];
  if (settings.method === 'bca') {
    if (!jackknife) throw new Error('internal: a BCa interval needs the jackknife replicates');
    levels = bcaLevels(estimate, replicates, jackknife, settings.level);
  }
  return [quantileSorted(sorted, levels[0]), quantileSorted(sorted, levels[1])];
}

/** The interval of a mean over items, from per-item values and the resample indices. */
export function meanInterval(
  values: Float64Array,
  indices: Int32Array,
  settings: Pick<IntervalSettings, 'method' | 'level'>,
): [number, number] {
  return bootstrapInterval(
    mean(values),
    meanReplicates(values, indices),
    settings,
    settings.method === 'bca' ? jackknifeMeans(values) : undefined,
  );
}
