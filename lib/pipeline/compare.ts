/**
 * `lea compare A B`: two finished runs (or suites) metric by metric, paired on the test items both scored
 * (difference B − A, its bootstrap interval, a two-sided sign-flip p-value, corrected over the declared family of
 * metrics), and which stages' cache keys differ between them, with what differs in each (config, code version,
 * inputs, imported weights, backend), so a user sees what changed and whether it mattered. A sweep's page and
 * `lea compare SWEEP` compare each point with the baseline point through the same compareMetrics.
 */
import { UPSTREAM_CHOICES } from '../config/upstream-choices.js';
import { intervalsOfSummary } from '../metrics/intervals.js';
import type { ItemScores } from '../metrics/scores.js';
import { adjustPValues, type Correction } from '../stats/multiple.js';
import { signFlipIsExact, smallestTwoSidedP } from '../stats/paired.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { ItemTests, type CheckTest, type TestSettings } from './regression.js';
import type { StageRecord } from './run-record.js';
import { readItemScores, scoresRefOf, type ScoredResult } from './run-scores.js';

export interface ComparedRun {
  runId: string;
  metrics: Record<string, number>;
  metricIntervals?: Record<string, [number, number]>;
  items?: ItemScores;
}

export interface MetricComparison {
  metric: string;
  a: number | null;
  b: number | null;
  aInterval?: [number, number];
  bInterval?: [number, number];
  /** b − a */
  difference: number | null;
  test: CheckTest;
  interval?: [number, number];
  p?: number;
  /** Corrected over the family; absent outside it. */
  pAdjusted?: number;
  items?: number;
  /** In the family the correction runs over (the declared metrics; all of them when none are declared). */
  inFamily: boolean;
}

/** How `lea compare` and a sweep test: the level, the draws, the correction and its family. */
export interface CompareSettings extends TestSettings {
  correction: Correction;
  /** The metrics the correction runs over, declared beforehand (absent: every metric). */
  family?: string[];
}

export const COMPARE_DEFAULTS = { alpha: 0.01, resamples: 10_000, correction: 'holm' } as const;

export function compareMetrics(
  a: ComparedRun,
  b: ComparedRun,
  settings: CompareSettings,
): MetricComparison[] {
  const tests = new ItemTests(settings);
  const names = [...new Set([...Object.keys(a.metrics), ...Object.keys(b.metrics)])].sort();
  const rows = names.map((metric): MetricComparison => {
    const va = a.metrics[metric];
    const vb = b.metrics[metric];
    const both = va !== undefined && vb !== undefined && Number.isFinite(va) && Number.isFinite(vb);
    const test =
      both && a.items && b.items
        ? tests.paired(b.items, a.items, metric, 'two-sided')
        : { test: 'tolerance' as const };
    return {
      metric,
      a: va ?? null,
      b: vb ?? null,
      ...(a.metricIntervals?.[metric] ? { aInterval: a.metricIntervals[metric] } : {}),
      ...(b.metricIntervals?.[metric] ? { bInterval: b.metricIntervals[metric] } : {}),
      difference: both ? differenceOf(va, vb) : null,
      test: test.test!,
      ...(test.interval ? { interval: test.interval } : {}),
      ...(test.p !== undefined ? { p: test.p, items: test.items } : {}),
      inFamily: !settings.family || settings.family.includes(metric),
    };
  });
  const tested = rows.filter((r) => r.p !== undefined && r.inFamily);
  adjustPValues(
    tested.map((r) => r.p!),
    settings.correction,
  ).forEach((p, i) => (tested[i]!.pAdjusted = p));
  return rows;
}

/** A row's p and, in brackets, its corrected p (or that it is outside the family): `0.0044 (0.059)`. */
export const pText = (r: Pick<MetricComparison, 'p' | 'pAdjusted'>): string =>
  r.p === undefined
    ? '–'
    : `${r.p.toPrecision(2)} (${r.pAdjusted === undefined ? 'not in family' : r.pAdjusted.toPrecision(2)})`;

/** Whether a row's difference is significant at the level: in the family, with corrected p below alpha. */
export const significant = (r: MetricComparison, alpha: number): boolean =>
  r.pAdjusted !== undefined && r.pAdjusted < alpha;

/**
 * What a comparison can decide at all, from the test alone: "detectable" means a difference can reach a corrected
 * p below alpha. The two-sided sign-flip test's p on n items is at least 2^-(n-1) when exact (the smallest is
 * reached only when every item moves one way), 2/(resamples + 1) when sampled; Holm's and Bonferroni's smallest
 * adjusted p over m tests is m times the smallest p. Exact, a metric with k items moving in the direction of its
 * mean difference has p >= 2^-(k-1) (flipping any of the other items only moves the mean further out), so no
 * metric is significant unless one has at least `minItems` of n items moving its way.
 */
export interface Detectability {
  items: number;
  family: number;
  alpha: number;
  correction: Correction;
  smallestP: number;
  smallestAdjustedP: number;
  decidable: boolean;
  /** Exact test only: the fewest items moving one way that can give a significant difference. */
  minItems?: number;
  text: string;
}

export function detectability(
  items: number,
  family: number,
  settings: Pick<CompareSettings, 'alpha' | 'resamples' | 'correction'>,
): Detectability {
  const { alpha, resamples, correction } = settings;
  const factor = correction === 'none' ? 1 : family;
  const smallestP = smallestTwoSidedP(items, resamples);
  const smallestAdjustedP = Math.min(1, factor * smallestP);
  const decidable = smallestAdjustedP < alpha;
  const exact = signFlipIsExact(items, resamples);
  // the least k with factor · 2^-(k-1) < alpha
  const k = Math.floor(Math.log2(factor / alpha)) + 2;
  const minItems = exact && decidable ? Math.max(1, k) : undefined;
  const pText = exact
    ? `the exact sign-flip test's smallest two-sided p on ${items} items is 2^-${items - 1} = ${smallestP.toPrecision(2)}`
    : `the sign-flip test's smallest two-sided p with ${resamples} random sign patterns is 2/${resamples + 1} = ${smallestP.toPrecision(2)}`;
  const adjText =
    correction === 'none'
      ? 'uncorrected'
      : `${correction}-adjusted over ${family} metric${family === 1 ? '' : 's'}: ${family} × that = ${smallestAdjustedP.toPrecision(2)}`;
  const text = decidable
    ? `smallest detectable difference (corrected p < ${alpha}): ${pText}, ${adjText}` +
      (minItems === undefined
        ? ''
        : `; a difference is significant only if at least ${minItems} of the ${items} items move in its direction`)
    : `cannot decide: ${pText}, ${adjText}, not below ${alpha}: no difference of any size can be significant; ` +
      `declare fewer metrics (--metrics) or score more test items`;
  return {
    items,
    family,
    alpha,
    correction,
    smallestP,
    smallestAdjustedP,
    decidable,
    ...(minItems === undefined ? {} : { minItems }),
    text,
  };
}

/** The detectability of a comparison's family: its tested rows in the family, on the fewest items any used. */
export function rowsDetectability(
  rows: MetricComparison[],
  settings: Pick<CompareSettings, 'alpha' | 'resamples' | 'correction'>,
): Detectability | undefined {
  const tested = rows.filter((r) => r.pAdjusted !== undefined);
  if (tested.length === 0) return undefined;
  return detectability(Math.min(...tested.map((r) => r.items!)), tested.length, settings);
}

/** How compareMetrics tests and corrects, in words (`lea compare` and a sweep's page print it). */
export function comparisonMethod(settings: CompareSettings, tested: number): string {
  const level = `${+(100 * (1 - settings.alpha)).toFixed(2)}%`;
  const family = settings.family ? `the ${tested} declared metrics` : `${tested} metrics (every tested one)`;
  return (
    `paired on the test items both scored (a suite: items pooled over its runs); two-sided sign-flip test ` +
    `of B − A (exact over all 2^n sign patterns when 2^n <= ${settings.resamples}, else ${settings.resamples} ` +
    `random ones), ${settings.correction} correction over ${family}; intervals of the difference: ${level} ` +
    `percentile bootstrap over items; A and B's own intervals as their runs computed them`
  );
}

/** A finished run's (or suite's) result, as far as a comparison reads it: its metrics, scores and intervals. */
export type ComparableResult = Omit<ScoredResult, 'stages'> & {
  stages?: Pick<StageRecord, 'name' | 'output' | 'summary'>[];
  metricIntervals?: Record<string, [number, number]>;
};

/** A finished result as compareMetrics reads it: its item scores from the store, its intervals. */
export async function comparedRun(
  store: ArtifactStore,
  runId: string,
  result: ComparableResult,
): Promise<ComparedRun> {
  const items = await readItemScores(store, scoresRefOf(result));
  const intervals =
    result.metricIntervals ??
    intervalsOfSummary(result.stages?.find((s) => s.name === 'metrics')?.summary ?? {})?.metricIntervals;
  return {
    runId,
    metrics: result.metrics,
    ...(intervals ? { metricIntervals: intervals } : {}),
    ...(items ? { items } : {}),
  };
}

/** What a stage's stored output says about how it was made (its artifact manifest's meta). */
export interface StageProvenance {
  name: string;
  key?: string;
  codeVersion?: string;
  config?: unknown;
  inputs?: Record<string, { key: string }>;
  /** weights.<input> → "name (kind, sha256 ...)" */
  weights?: Record<string, string>;
  backend?: string;
}

/**
 * B − A; a difference within float64 rounding of the values (two means of the same scores summed in another order)
 * is the 0 it stands for, not −5.551e−17.
 */
function differenceOf(a: number, b: number): number {
  const d = b - a;
  return Math.abs(d) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b)) ? 0 : d;
}

/** Dotted paths where two JSON values differ, e.g. `decoding.samples: 5 → 1`. */
export function jsonDifferences(a: unknown, b: unknown, path = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => jsonDifferences(a[k], b[k], path ? `${path}.${k}` : k));
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));
  return [`${path || '(value)'}: ${show(a)} → ${show(b)}`];
}

/**
 * The upstream choices (the run records' `choices`) whose values differ, each as `choice FIELD: A → B`, by the
 * plan stages that compute with it: the cause of those stages' new keys.
 */
export function choiceCauses(
  a: Record<string, string> = {},
  b: Record<string, string> = {},
): Map<string, string[]> {
  const causes = new Map<string, string[]>();
  for (const choice of UPSTREAM_CHOICES) {
    const [d] = jsonDifferences(a[choice.field], b[choice.field], choice.field);
    if (!d) continue;
    for (const stage of choice.stages) causes.set(stage, [...(causes.get(stage) ?? []), `choice ${d}`]);
  }
  return causes;
}

/**
 * Each stage whose output differs between two runs, with what differs (empty: the same artifact); a changed
 * upstream choice (choiceCauses) is named first on the stages it enters.
 */
export function stageDifferences(
  a: StageProvenance[],
  b: StageProvenance[],
  causes: Map<string, string[]> = new Map(),
): { stage: string; differences: string[] }[] {
  const byName = new Map(b.map((s) => [s.name, s]));
  const out: { stage: string; differences: string[] }[] = [];
  for (const sa of a) {
    const sb = byName.get(sa.name);
    if (!sb) {
      out.push({ stage: sa.name, differences: ['only in A'] });
      continue;
    }
    if (sa.key === sb.key) continue;
    const differences = [
      ...(causes.get(sa.name) ?? []),
      ...(sa.codeVersion !== sb.codeVersion ? [`code version ${sa.codeVersion} → ${sb.codeVersion}`] : []),
      ...jsonDifferences(sa.config, sb.config).map((d) => `config ${d}`),
      ...Object.keys({ ...sa.inputs, ...sb.inputs })
        .filter((i) => sa.inputs?.[i]?.key !== sb.inputs?.[i]?.key)
        .map((i) => `input ${i} (upstream output differs)`),
      ...jsonDifferences(sa.weights ?? {}, sb.weights ?? {}).map((d) => `weights ${d}`),
      ...(sa.backend !== sb.backend
        ? [`backend ${sa.backend ?? '(unknown)'} → ${sb.backend ?? '(unknown)'}`]
        : []),
    ];
    out.push({ stage: sa.name, differences: differences.length ? differences : ['output differs'] });
  }
  for (const sb of b)
    if (!a.some((s) => s.name === sb.name)) out.push({ stage: sb.name, differences: ['only in B'] });
  return out;
}
