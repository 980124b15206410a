/**
 * `lea compare A B`: two finished runs (or suites) metric by metric, paired on the test items both scored
 * (difference B − A, its bootstrap interval, a two-sided sign-flip p-value, corrected over the metrics), and
 * which stages' cache keys differ between them, with what differs in each (config, code version, inputs,
 * imported weights, backend), so a user sees what changed and whether it mattered.
 */
import { UPSTREAM_CHOICES } from '../config/upstream-choices.js';
import type { ItemScores } from '../metrics/scores.js';
import { adjustPValues, type Correction } from '../stats/multiple.js';
import { ItemTests, type CheckTest, type TestSettings } from './regression.js';

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
  pAdjusted?: number;
  items?: number;
}

export function compareMetrics(
  a: ComparedRun,
  b: ComparedRun,
  settings: TestSettings & { correction: Correction },
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
    };
  });
  const tested = rows.filter((r) => r.p !== undefined);
  adjustPValues(
    tested.map((r) => r.p!),
    settings.correction,
  ).forEach((p, i) => (tested[i]!.pAdjusted = p));
  return rows;
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
