/**
 * Sweeps (`lea sweep CONFIG --grid key=v1,v2 ...`, or a config's `sweep:` section): the points of a grid (or a
 * seeded sample of it), each the config with `--set`-style overrides, started as one suite (workflows/suite.ts),
 * so the stages all points share are computed once. Each point is compared with the baseline point by
 * compareMetrics, the same comparison `lea compare BASELINE_RUN POINT_RUN` makes.
 */
import { parse as parseYamlValue } from 'yaml';
import { Rng } from '../compute/rng.js';
import { configPath, sweepSection, type SweepSection, type SweptValue } from '../config/sweep.js';
import { BadInputError } from '../errors.js';
import { metricDefinition } from '../metrics/definitions.js';
import { fmtIntervalAfter, fmtNumber, textTable } from '../report/format.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import {
  compareMetrics,
  comparedRun,
  comparisonMethod,
  pText,
  rowsDetectability,
  significant,
  type ComparableResult,
  type CompareSettings,
  type ComparedRun,
  type Detectability,
  type MetricComparison,
} from './compare.js';

/** One point of a sweep: its config name (`NAME-steps4-ridgealpha10`), label and the values it sets. */
export interface SweepPoint {
  name: string;
  /** `decoding.steps=4 alignment.ridgeAlpha=10`: what the point sets, as `--set` takes it. */
  label: string;
  values: Record<string, SweptValue>;
}

/** What a sweep suite carries in its input: its points and what they are compared with. */
export interface SweepPlan {
  /** The swept config's name. */
  config: string;
  keys: string[];
  points: SweepPoint[];
  /** The baseline point's name. */
  baseline: string;
  /** The declared family of the correction (absent: every metric). */
  metrics?: string[];
}

/** A point once its runs ended: a single run's metrics stage, or its seeds' runs' pooled scores. */
export interface SweepPointOutcome extends SweepPoint {
  runIds: string[];
  status: 'completed' | 'failed';
  /** Why a failed point failed (its first failed run's error). */
  error?: string;
  result?: ComparableResult & { intervalMethod?: string };
}

export interface SweepOutcome extends Omit<SweepPlan, 'points'> {
  points: SweepPointOutcome[];
}

/** The `--set` strings of a point: JSON is YAML, so applyOverrides parses each back to the same value. */
export const pointOverrides = (p: SweepPoint): string[] =>
  Object.entries(p.values).map(([k, v]) => `${k}=${JSON.stringify(v)}`);

/** Splits at commas outside brackets and quotes: `a,[1,2],"x,y"` → `a`, `[1,2]`, `"x,y"`. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '[' || ch === '{') depth++;
    else if (ch === ']' || ch === '}') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

function keyOf(flag: string, arg: string, key: string): string {
  if (!configPath.safeParse(key).success)
    throw new BadInputError(`${flag} ${JSON.stringify(arg)}: '${key}' is not a dotted config path`);
  return key;
}

/** `--grid decoding.steps=4,8,11`: the key and its values, each parsed as `--set` parses a value. */
export function parseGridArg(arg: string): [string, unknown[]] {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new BadInputError(`--grid ${JSON.stringify(arg)}: expected key.path=v1,v2,...`);
  const values = splitTopLevel(arg.slice(eq + 1));
  if (values.some((v) => v === '')) throw new BadInputError(`--grid ${JSON.stringify(arg)}: an empty value`);
  return [keyOf('--grid', arg, arg.slice(0, eq)), values.map((v) => parseYamlValue(v) as unknown)];
}

/** `--baseline-point decoding.steps=11,alignment.ridgeAlpha=500`: the values that pick the baseline point. */
export function parsePointArg(arg: string): Record<string, unknown> {
  return Object.fromEntries(
    splitTopLevel(arg).map((pair) => {
      const eq = pair.indexOf('=');
      if (eq <= 0)
        throw new BadInputError(`--baseline-point ${JSON.stringify(arg)}: expected key.path=value,...`);
      return [
        keyOf('--baseline-point', arg, pair.slice(0, eq)),
        parseYamlValue(pair.slice(eq + 1)) as unknown,
      ];
    }),
  );
}

/** `--metrics a,b`: a declared family, checked by checkFamily. */
export function parseMetricsArg(arg: string): string[] {
  return checkFamily(
    arg.split(',').map((n) => n.trim()),
    '--metrics',
  );
}

/** A declared family: names this version computes (lib/metrics/definitions.ts), each once. */
export function checkFamily(names: string[], what: string): string[] {
  for (const n of names)
    if (!metricDefinition(n))
      throw new BadInputError(`${what}: '${n}' is not a metric this version computes`);
  if (new Set(names).size !== names.length)
    throw new BadInputError(`${what}: ${names.join(',')} names a metric twice`);
  return names;
}

/** A sweep section from the config and the flags (a flag replaces the config's entry), checked as the config's. */
export function sweepDefinition(
  fromConfig: SweepSection | undefined,
  flags: Partial<SweepSection>,
): SweepSection {
  const merged = {
    ...fromConfig,
    ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)),
  };
  if (!merged.grid) throw new BadInputError('--grid: none given, and the config has no sweep section');
  const parsed = sweepSection.safeParse(merged);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new BadInputError(`invalid sweep: ${issues.join('; ')}`);
  }
  if (parsed.data.metrics) checkFamily(parsed.data.metrics, 'sweep.metrics');
  return parsed.data;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** A config value at a dotted path (undefined where the path leads nowhere). */
function valueAt(cfg: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((node, k) => (node as Record<string, unknown> | undefined)?.[k], cfg);
}

const slug = (v: SweptValue) =>
  JSON.stringify(v)
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '_')
    .replace(/^_+|_+$/g, '');

/**
 * The sweep's points in grid order (the first key varies slowest), named `NAME-<key><value>-...` from each key's
 * last segment (`NAME-p<i>` where that is no valid, unique config name), with the baseline point; `sample` keeps
 * that many, drawn with the sample seed, the baseline always among them.
 */
export function sweepPlan(baseName: string, cfg: { seed: number }, def: SweepSection): SweepPlan {
  const keys = Object.keys(def.grid);
  let combos: Record<string, SweptValue>[] = [{}];
  for (const k of keys) combos = combos.flatMap((c) => def.grid[k]!.map((v) => ({ ...c, [k]: v })));
  const names = new Set<string>();
  const all = combos.map((values, i): SweepPoint => {
    let name = `${baseName}-${keys.map((k) => `${k.split('.').at(-1)!.toLowerCase()}${slug(values[k]!)}`).join('-')}`;
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name) || names.has(name)) name = `${baseName}-p${i + 1}`;
    names.add(name);
    return { name, label: keys.map((k) => `${k}=${JSON.stringify(values[k])}`).join(' '), values };
  });
  const baseline = baselinePointOf(all, keys, cfg, def.baselinePoint);
  let points = all;
  if (def.sample !== undefined && def.sample < all.length) {
    const order = new Rng(def.sampleSeed ?? cfg.seed, 'sweep/sample').permutation(all.length);
    const others = [...order].filter((i) => all[i] !== baseline).slice(0, def.sample - 1);
    points = all.filter((p, i) => p === baseline || others.includes(i));
  }
  return {
    config: baseName,
    keys,
    points,
    baseline: baseline.name,
    ...(def.metrics ? { metrics: def.metrics } : {}),
  };
}

function baselinePointOf(
  points: SweepPoint[],
  keys: string[],
  cfg: unknown,
  chosen: Record<string, unknown> | undefined,
): SweepPoint {
  if (!chosen) return points.find((p) => keys.every((k) => same(p.values[k], valueAt(cfg, k)))) ?? points[0]!;
  const unknown = Object.keys(chosen).filter((k) => !keys.includes(k));
  if (unknown.length)
    throw new BadInputError(
      `--baseline-point: ${unknown.join(', ')} is not swept (swept: ${keys.join(', ')})`,
    );
  const matches = points.filter((p) => Object.entries(chosen).every(([k, v]) => same(p.values[k], v)));
  if (matches.length !== 1)
    throw new BadInputError(
      `--baseline-point: ${matches.length === 0 ? 'no point' : `${matches.length} points`} of the grid ` +
        `match ${Object.entries(chosen)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(',')}; name a value for each swept key`,
    );
  return matches[0]!;
}

/** A point's row of the comparison: its values, and its comparison with the baseline point when it completed. */
export interface SweepRow extends Omit<SweepPointOutcome, 'result'> {
  metrics?: Record<string, number>;
  metricIntervals?: Record<string, [number, number]>;
  /** Against the baseline point (absent for the baseline itself and for failed points). */
  comparisons?: MetricComparison[];
}

export interface SweepComparison {
  keys: string[];
  baseline: string;
  settings: CompareSettings;
  /** Every metric any completed point has: the family, the paper's, the others, the reference rows. */
  metrics: string[];
  rows: SweepRow[];
  /** Metric → the best point's name, only where its difference from the baseline is significant and better. */
  best: Record<string, string>;
  detectability?: Detectability;
  method: string;
}

/**
 * Every point against the baseline point, each pair through compareMetrics (what `lea compare` prints for the two
 * runs). Holm (or the chosen correction) runs within each point's comparison, over the declared family; points
 * are not corrected for one another.
 */
export function compareSweep(
  outcome: SweepOutcome,
  runs: Map<string, ComparedRun>,
  settings: CompareSettings,
): SweepComparison {
  const base = runs.get(outcome.baseline);
  // the rows leave out what each point's comparison read (its stored results)
  const rows = outcome.points.map(({ result: _read, ...point }): SweepRow => {
    const run = runs.get(point.name);
    if (!run) return point;
    return {
      ...point,
      metrics: run.metrics,
      ...(run.metricIntervals ? { metricIntervals: run.metricIntervals } : {}),
      ...(base && point.name !== outcome.baseline
        ? { comparisons: compareMetrics(base, run, settings) }
        : {}),
    };
  });
  // the declared family first, then the paper's metrics, the others, and the reference rows last
  const rank = (m: string) => {
    const d = metricDefinition(m);
    return settings.family?.includes(m) ? 0 : d?.reference ? 3 : d?.paper ? 1 : 2;
  };
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.metrics ?? {})))].sort(
    (a, b) => rank(a) - rank(b) || (a < b ? -1 : 1),
  );
  const best: Record<string, string> = {};
  for (const m of metrics) {
    const better = metricDefinition(m)?.better ?? 'higher';
    const ranked = rows
      .filter((r) => Number.isFinite(r.metrics?.[m]))
      .sort((x, y) =>
        better === 'higher' ? y.metrics![m]! - x.metrics![m]! : x.metrics![m]! - y.metrics![m]!,
      );
    const top = ranked[0];
    const row = top?.comparisons?.find((c) => c.metric === m);
    const improves =
      row?.difference != null && (better === 'higher' ? row.difference > 0 : row.difference < 0);
    if (top && row && improves && significant(row, settings.alpha)) best[m] = top.name;
  }
  const compared = rows.find((r) => r.comparisons)?.comparisons ?? [];
  const detect = rowsDetectability(compared, settings);
  return {
    keys: outcome.keys,
    baseline: outcome.baseline,
    settings,
    metrics,
    rows,
    best,
    ...(detect ? { detectability: detect } : {}),
    method: comparisonMethod(settings, compared.filter((c) => c.pAdjusted !== undefined).length),
  };
}

/** compareSweep over the points' stored item scores: what the page and `lea compare SWEEP` show. */
export async function loadSweepComparison(
  store: ArtifactStore,
  outcome: SweepOutcome,
  settings: CompareSettings,
): Promise<SweepComparison> {
  const runs = new Map<string, ComparedRun>();
  for (const p of outcome.points) if (p.result) runs.set(p.name, await comparedRun(store, p.name, p.result));
  return compareSweep(outcome, runs, settings);
}

/** The sweep's points as the terminal shows them: one row per point and metric, its difference from the baseline. */
export function sweepText(c: SweepComparison): string {
  const heads = [
    'point',
    'metric',
    'value',
    `− baseline [${+(100 * (1 - c.settings.alpha)).toFixed(2)}%]`,
    'p (corrected)',
  ];
  const body: string[][] = [];
  for (const r of c.rows) {
    const label = `${r.label}${r.name === c.baseline ? ' (baseline)' : ''}`;
    if (r.status !== 'completed' || !r.metrics) {
      body.push([label, '–', `failed: ${r.error ?? 'no result'}`, '', '']);
      continue;
    }
    for (const m of c.metrics) {
      const v = r.metrics[m];
      const d = r.comparisons?.find((x) => x.metric === m);
      body.push([
        label,
        m,
        (v === undefined ? '–' : fmtNumber(v)) + fmtIntervalAfter(r.metricIntervals?.[m]),
        d?.difference == null ? '' : fmtNumber(d.difference) + fmtIntervalAfter(d.interval),
        d ? pText(d) + (c.best[m] === r.name ? ' best' : '') : '',
      ]);
    }
  }
  return textTable(heads, body);
}
