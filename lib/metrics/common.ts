/**
 * What every metric shares: the result shape, the paired-items input with its validation, Pearson r, and
 * the aggregation over decoded samples (spec §5: each metric is computed per sample index, then averaged,
 * with min and max also reported).
 */
import { BadInputError } from '../errors.js';
import type { NdArray } from '../tensors/ndarray.js';

export interface MetricResult {
  value: number;
  /**
   * The score unrelated predictions get: the theoretical level for identification and classification,
   * otherwise the expectation over random derangements of the pairs, i.e. the mean over all i ≠ j (per-image
   * SSIM estimates it from a few cyclic shifts); null where no pairing defines one (FID, whole-stack SSIM).
   */
  chance: number | null;
  /** Each test item's score, for a metric that is the mean over items (what an interval resamples). */
  perItem?: number[];
}

/** A metric averaged over samples: value is the mean, with min, max and each sample's value. */
export interface SampledResult extends MetricResult {
  min: number;
  max: number;
  perSample: number[];
  /** [samples][items], when every sample's result has its items' scores. */
  perItemBySample?: number[][];
}

/** N items of equal shape, as float64 in C order. */
export interface Items {
  count: number;
  /** Shape of one item. */
  itemShape: number[];
  /** Elements per item. */
  size: number;
  data: Float64Array;
}

/** Converts an NdArray whose first axis indexes items; rejects empty, non-numeric and non-finite input. */
export function itemsFrom(arr: NdArray, what: string): Items {
  if (arr.shape.length < 1) throw new BadInputError(`${what}: expected an array of items, got a scalar`);
  if (arr.dtype === 'bool') throw new BadInputError(`${what}: expected numbers, got a bool array`);
  const count = arr.shape[0]!;
  const itemShape = arr.shape.slice(1);
  const size = itemShape.reduce((a, b) => a * b, 1);
  if (count === 0 || size === 0)
    throw new BadInputError(`${what}: empty array, shape [${arr.shape.join(', ')}]`);
  const data = new Float64Array(count * size);
  for (let i = 0; i < data.length; i++) {
    const v = Number(arr.data[i]);
    if (!Number.isFinite(v))
      throw new BadInputError(`${what}: non-finite value ${v} in item ${Math.floor(i / size)}`);
    data[i] = v;
  }
  return { count, itemShape, size, data };
}

export function item(items: Items, i: number): Float64Array {
  return items.data.subarray(i * items.size, (i + 1) * items.size);
}

/** Throws unless both have the same number of items of the same shape; `minCount` items at least. */
export function checkPaired(pred: Items, target: Items, minCount = 1): void {
  if (pred.count !== target.count || pred.itemShape.join() !== target.itemShape.join()) {
    throw new BadInputError(
      `predictions [${pred.count}, ${pred.itemShape.join(', ')}] and targets [${target.count}, ${target.itemShape.join(', ')}] differ in shape`,
    );
  }
  if (pred.count < minCount)
    throw new BadInputError(`this metric needs at least ${minCount} items, got ${pred.count}`);
}

/** Items built from plain rows (tests and callers holding float arrays). */
export function itemsOf(data: Float64Array, count: number, itemShape: number[]): Items {
  const size = itemShape.reduce((a, b) => a * b, 1);
  if (data.length !== count * size)
    throw new BadInputError(`expected ${count}x[${itemShape.join(', ')}] values, got ${data.length}`);
  return { count, itemShape, size, data };
}

/**
 * Pearson correlation of two equal-length vectors read with a stride (two-pass, float64, as
 * scipy.stats.pearsonr); NaN when either is constant.
 */
export function pearson(
  x: Float64Array,
  y: Float64Array,
  n = x.length,
  stride = 1,
  xOffset = 0,
  yOffset = 0,
): number {
  let mx = 0;
  let my = 0;
  for (let k = 0; k < n; k++) {
    mx += x[xOffset + k * stride]!;
    my += y[yOffset + k * stride]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let k = 0; k < n; k++) {
    const dx = x[xOffset + k * stride]! - mx;
    const dy = y[yOffset + k * stride]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return NaN;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return s / values.length;
}

/** Mean over samples with min and max (spec §5); chance is the samples' mean chance, or null. */
export function overSamples(results: MetricResult[]): SampledResult {
  if (results.length === 0) throw new BadInputError('no samples to aggregate');
  const values = results.map((r) => r.value);
  const chances = results.map((r) => r.chance);
  return {
    value: mean(values),
    chance: chances.some((c) => c === null) ? null : mean(chances as number[]),
    min: Math.min(...values),
    max: Math.max(...values),
    perSample: values,
    ...(results.every((r) => r.perItem && r.perItem.length === results[0]!.perItem!.length)
      ? { perItemBySample: results.map((r) => r.perItem!) }
      : {}),
  };
}
