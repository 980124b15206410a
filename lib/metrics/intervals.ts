/**
 * Intervals on the metrics that are means over test items: a seeded bootstrap that resamples items, each item
 * keeping all its decoded samples (its score is the mean over them, so the interval's centre is the metric's
 * value). Every metric of a run is resampled with the same item sets, drawn from the run's seed. Metrics that
 * are not item means (FID, whole-stack SSIM, the per-voxel encoding r) get no interval.
 */
import { Rng } from '../compute/rng.js';
import { meanInterval, resampleIndices, type IntervalSettings } from '../stats/bootstrap.js';
import type { MetricRow } from './decoding.js';

/** How an interval was computed, in words (the record, `lea status` and the report print it). */
export function describeIntervals(s: IntervalSettings, seed: number): string {
  return (
    `${Math.round(s.level * 100)}% ${s.method === 'bca' ? 'BCa' : 'percentile'} bootstrap over test items ` +
    `(${s.resamples} resamples, samples kept with their item, seed ${seed})`
  );
}

/** Each item's mean over samples: [samples][items] → [items]. */
export function itemMeans(bySample: number[][]): Float64Array {
  const items = bySample[0]!.length;
  const out = new Float64Array(items);
  for (let i = 0; i < items; i++) {
    let s = 0;
    for (const sample of bySample) s += sample[i]!;
    out[i] = s / bySample.length;
  }
  return out;
}

/** [low, high] of every row that holds per-item scores; all rows share one draw of item sets. */
export function metricIntervals(
  rows: MetricRow[],
  settings: IntervalSettings,
  seed: number,
): Record<string, [number, number]> {
  const scored = rows.filter((r) => r.perItem && r.perItem[0]!.length >= 2);
  if (scored.length === 0) return {};
  const n = scored[0]!.perItem![0]!.length;
  const indices = resampleIndices(n, settings.resamples, new Rng(seed, 'metrics/bootstrap'));
  const out: Record<string, [number, number]> = {};
  for (const r of scored) {
    if (r.perItem![0]!.length !== n)
      throw new Error(`internal: ${r.name} scores ${r.perItem![0]!.length} items, not ${n}`);
    out[r.name] = meanInterval(itemMeans(r.perItem!), indices, settings);
  }
  return out;
}
