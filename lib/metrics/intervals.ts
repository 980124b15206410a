/**
 * Intervals on the metrics that are means over test items: a seeded bootstrap that resamples items, each item
 * keeping all its decoded samples (its score is the mean over them, so the interval's centre is the metric's
 * value). Every metric of a run is resampled with the same item sets, drawn from the run's seed. Metrics that
 * are not item means (FID, whole-stack SSIM, the per-voxel encoding r) get no interval.
 */
import { Rng } from '../compute/rng.js';
import { meanInterval, resampleIndices, type IntervalSettings } from '../stats/bootstrap.js';
import type { MetricRow } from './decoding.js';
import { itemMeans } from './scores.js';

/** How an interval was computed, in words (the record, `lea status` and the report print it). */
export function describeIntervals(s: IntervalSettings, seed: number, over = 'test items'): string {
  return (
    `${Math.round(s.level * 100)}% ${s.method === 'bca' ? 'BCa' : 'percentile'} bootstrap over ${over} ` +
    `(${s.resamples} resamples, samples kept with their item, seed ${seed})`
  );
}

/** [low, high] of each metric from its item scores; all metrics share one draw of item sets. */
export function itemIntervals(
  scores: Record<string, Float64Array>,
  settings: IntervalSettings,
  seed: number,
): Record<string, [number, number]> {
  const scored = Object.entries(scores).filter(([, s]) => s.length >= 2);
  if (scored.length === 0) return {};
  const n = scored[0]![1].length;
  const indices = resampleIndices(n, settings.resamples, new Rng(seed, 'metrics/bootstrap'));
  const out: Record<string, [number, number]> = {};
  for (const [name, s] of scored) {
    if (s.length !== n) throw new Error(`internal: ${name} scores ${s.length} items, not ${n}`);
    out[name] = meanInterval(s, indices, settings);
  }
  return out;
}

/** [low, high] of every row that holds per-item scores. */
export function metricIntervals(
  rows: MetricRow[],
  settings: IntervalSettings,
  seed: number,
): Record<string, [number, number]> {
  return itemIntervals(
    Object.fromEntries(rows.filter((r) => r.perItem).map((r) => [r.name, itemMeans(r.perItem!)])),
    settings,
    seed,
  );
}

/** The intervals as the metrics stage's summary holds them (strings: the run's metrics are its numbers). */
export function intervalSummary(
  bounds: Record<string, [number, number]>,
  method: string,
): Record<string, string> {
  return { intervals: JSON.stringify(bounds), 'intervals.method': method };
}

/** The intervals of a metrics stage's summary (none before metrics stage version 3). */
export function intervalsOfSummary(
  summary: Record<string, unknown>,
): { metricIntervals: Record<string, [number, number]>; intervalMethod: string } | undefined {
  if (typeof summary.intervals !== 'string') return undefined;
  return {
    metricIntervals: JSON.parse(summary.intervals) as Record<string, [number, number]>,
    intervalMethod: String(summary['intervals.method']),
  };
}
