/**
 * Regression verdicts that know noise: a run's metrics against a baseline file (the paper's table, filled in by a
 * user) and against an earlier run (a pinned one, or the last good run of the same config), each comparison
 * tested on the run's per-item scores where it has them.
 *
 * Baseline file (YAML or JSON):
 *   name: god-sbj1-paper
 *   source: "LEA TMLR 2024, Table 3"        # where the numbers come from
 *   alpha: 0.01                             # family-wise level (default 0.01)
 *   correction: holm                        # holm | bonferroni | none (default holm)
 *   resamples: 10000                        # bootstrap resamples and random sign patterns (default 10000)
 *   run: god-sbj_1-20261201T120000-ab12cd   # optional: compare with this run (or suite), not the last good one
 *   family: [decode.nway50, decode.fid]     # optional: the metrics the verdict judges, declared beforehand as a
 *                                           # pre-registered analysis declares its primary endpoints (default: all)
 *   metrics:
 *     decode.nway50: { value: null, tolerance: 0.02, better: higher }   # null = not filled in yet
 *     decode.fid:    { value: 123.4, tolerance: 5, better: lower }
 *
 * Against a published value v: a bootstrap of the run's mean over test items gives the p-value of "the run is
 * at least as good as v less the tolerance" (one-sided; two-sided for `better: either`), the percentile
 * bootstrap's inversion, so the metric regresses exactly when v lies outside the run's interval (at the
 * corrected level) by more than the tolerance. Against a run: a paired sign-flip test of the per-item
 * differences (candidate − reference, on the items both scored), one-sided in the `better` direction. Every
 * test of the verdict's family (every metric it names, or those `family` declares) is corrected together as the
 * file says, and a metric outside a declared family is tested and reported but never judged; a metric of the
 * family regresses when it is worse by more
 * than its tolerance (which may be 0) and its corrected p is below alpha. A metric with no per-item scores (FID,
 * whole-stack SSIM, the per-voxel encoding r) or a run from before scores were stored is checked against the
 * tolerance alone, and says so. A stand-in metric (lib/metrics/definitions.ts, e.g. decode.proto_nway5) is
 * refused: no paper table has it.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Rng } from '../compute/rng.js';
import { BadInputError, errorMessage } from '../errors.js';
import { metricDefinition } from '../metrics/definitions.js';
import { pairedItems, type ItemScores } from '../metrics/scores.js';
import { bootstrapInterval, mean, meanReplicates, resampleIndices } from '../stats/bootstrap.js';
import { adjustPValues, CORRECTIONS } from '../stats/multiple.js';
import { signFlipTest, type Alternative } from '../stats/paired.js';

const expectation = z.strictObject({
  value: z.number().nullable(),
  tolerance: z.number().min(0),
  better: z.enum(['higher', 'lower', 'either']).default('either'),
});

export const baselineSchema = z
  .strictObject({
    name: z.string().min(1),
    source: z.string().min(1),
    /** A run or suite id: the paired comparison is with it instead of the last good run. */
    run: z.string().min(1).optional(),
    alpha: z.number().gt(0).lt(1).default(0.01),
    correction: z.enum(CORRECTIONS).default('holm'),
    resamples: z.number().int().min(1000).max(1_000_000).default(10_000),
    /** The metrics judged and corrected together (absent: every metric below). */
    family: z
      .array(z.string().min(1))
      .min(1)
      .refine((f) => new Set(f).size === f.length, 'a metric named twice')
      .optional(),
    metrics: z.record(z.string(), expectation),
  })
  .refine((b) => (b.family ?? []).every((m) => m in b.metrics), {
    message: 'every metric of the family needs its entry under metrics',
    path: ['family'],
  });

export type Baseline = z.infer<typeof baselineSchema>;
export type Expectation = z.infer<typeof expectation>;

/** How one comparison was tested. */
export type CheckTest = 'paired sign-flip' | 'bootstrap' | 'tolerance';

/** One metric compared with one reference (the baseline's value, or an earlier run's). */
export interface Check {
  metric: string;
  against: 'baseline' | 'last-good' | 'pinned-run';
  expected: number;
  actual: number | null;
  /** actual - expected (null when the run lacks the metric) */
  delta: number | null;
  tolerance: number;
  test?: CheckTest;
  /** The interval of the difference at level 1 - alpha (uncorrected): paired items, or the run's bootstrap. */
  interval?: [number, number];
  p?: number;
  /** p after the family's correction (the verdict's `correction`); absent outside a declared family. */
  pAdjusted?: number;
  /** Outside the baseline's declared family: tested and shown, never judged. */
  outsideFamily?: true;
  /** Test items the test used. */
  items?: number;
  regressed?: boolean;
}

export interface Verdict {
  verdict: 'pass' | 'regressed';
  failures: Check[];
  /** Every comparison, regressed or not (absent in verdicts from before the tests). */
  checks?: Check[];
  checked: string[];
  /** Baseline metrics with no value yet (nothing to compare). */
  unfilled: string[];
  baseline: string;
  lastGoodRunId?: string;
  pinnedRunId?: string;
  /** How the tests were made and corrected, in words. */
  method?: string;
}

/** What a verdict judges: a run's (or a suite's mean) metrics, with its per-item scores when it has them. */
export interface JudgedRun {
  metrics: Record<string, number>;
  items?: ItemScores;
}

/** The earlier run a verdict compares with. */
export interface ReferenceRun extends JudgedRun {
  runId: string;
  pinned: boolean;
}

export function parseBaseline(text: string, source: string): Baseline {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new BadInputError(
      `${source}: baseline is not valid YAML/JSON: ${errorMessage(err).split('\n')[0]}`,
    );
  }
  const parsed = baselineSchema.safeParse(raw);
  if (!parsed.success) {
    // One line (file, field, reason): it is what `lea run` and `lea schedule create` print when they refuse it.
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new BadInputError(`${source}: invalid baseline: ${issues.join('; ')}`);
  }
  // A paper table has no value for a stand-in: filling one in from the paper would compare unlike things.
  for (const name of Object.keys(parsed.data.metrics)) {
    const standInFor = metricDefinition(name)?.standInFor;
    if (standInFor)
      throw new BadInputError(
        `${source}: invalid baseline: metrics.${name}: a stand-in for ${standInFor}, not a metric the paper reports ` +
          `(name ${standInFor}, computed with the network the config's metrics section names)`,
      );
  }
  return parsed.data;
}

export function loadBaseline(file: string): Baseline {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BadInputError(
      `${file}: cannot read baseline (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`,
    );
  }
  return parseBaseline(text, file);
}

function worseBy(e: Expectation, expected: number, actual: number): boolean {
  const d = actual - expected;
  if (e.better === 'higher') return d < -e.tolerance;
  if (e.better === 'lower') return d > e.tolerance;
  return Math.abs(d) > e.tolerance;
}

/** The direction of "worse" as a test's alternative for the candidate − reference differences. */
const worseSide = (e: Expectation): Alternative =>
  e.better === 'higher' ? 'less' : e.better === 'lower' ? 'greater' : 'two-sided';

/** Share of replicates at or beyond a bound, with the +1 that keeps a bootstrap p-value above zero. */
function tailP(replicates: Float64Array, beyond: (r: number) => boolean): number {
  let n = 0;
  for (const r of replicates) if (beyond(r)) n++;
  return (n + 1) / (replicates.length + 1);
}

/** The level and the draws of a family of item tests. */
export interface TestSettings {
  alpha: number;
  resamples: number;
}

/**
 * Item-level tests: a run's item scores against a published value (bootstrap of the mean) or against another
 * run's item scores (paired sign-flip). Deterministic: the draws come from fixed streams.
 */
export class ItemTests {
  private readonly draws = new Map<number, Int32Array>();
  constructor(private readonly settings: TestSettings) {}

  private indices(n: number): Int32Array {
    let idx = this.draws.get(n);
    if (!idx) {
      idx = resampleIndices(n, this.settings.resamples, new Rng(0, `verdict/bootstrap/${n}`));
      this.draws.set(n, idx);
    }
    return idx;
  }

  /** The percentile bootstrap interval of a mean over items, at level 1 - alpha. */
  interval(values: Float64Array): [number, number] {
    return bootstrapInterval(mean(values), meanReplicates(values, this.indices(values.length)), {
      method: 'percentile',
      level: 1 - this.settings.alpha,
    });
  }

  /** The run's mean against a published value v: "at least as good as v less the tolerance". */
  published(scores: Float64Array, e: Expectation, v: number): Partial<Check> {
    const finite = scores.filter(Number.isFinite);
    if (finite.length < 2) return { test: 'tolerance' };
    const reps = meanReplicates(finite, this.indices(finite.length));
    // the share of replicates still as good as v allows: few means v lies beyond the run's interval
    const reachesFromBelow = () => tailP(reps, (r) => r >= v - e.tolerance);
    const reachesFromAbove = () => tailP(reps, (r) => r <= v + e.tolerance);
    const p =
      e.better === 'higher'
        ? reachesFromBelow()
        : e.better === 'lower'
          ? reachesFromAbove()
          : Math.min(1, 2 * Math.min(reachesFromBelow(), reachesFromAbove()));
    const [low, high] = this.interval(finite);
    return { test: 'bootstrap', p, interval: [low - v, high - v], items: finite.length };
  }

  /** Candidate − reference on the items both scored: a paired sign-flip test with the given alternative. */
  paired(
    candidate: ItemScores,
    reference: ItemScores,
    metric: string,
    alternative: Alternative,
  ): Partial<Check> {
    const pairs = pairedItems(candidate, reference, metric);
    if (!pairs) return { test: 'tolerance' };
    const d = pairs.a.map((x, i) => x - pairs.b[i]!);
    const result = signFlipTest(d, {
      alternative,
      resamples: this.settings.resamples,
      rng: new Rng(0, `verdict/sign-flip/${metric}`),
    });
    return { test: 'paired sign-flip', p: result.p, interval: this.interval(d), items: d.length };
  }
}

/** The verdict's method, in words (the record, `lea status` and the report print it). */
function describeMethod(b: Baseline, tests: number): string {
  const level = `${+(100 * (1 - b.alpha)).toFixed(2)}%`;
  const family = b.family
    ? ` of the declared family (${b.family.join(', ')}; the other metrics are not judged)`
    : '';
  return (
    `against a run: paired sign-flip test of per-item differences (exact over all 2^n sign patterns when ` +
    `2^n <= ${b.resamples}, else ${b.resamples} random ones); against a published value: bootstrap of the run's ` +
    `mean over test items (${b.resamples} resamples); ${b.correction === 'none' ? 'no correction' : `${b.correction} correction`} ` +
    `over ${tests} test${tests === 1 ? '' : 's'}${family}; regressed = worse by more than the tolerance with corrected ` +
    `p < ${b.alpha}; intervals of differences: ${level} percentile bootstrap over items (uncorrected)`
  );
}

/**
 * Compares a run with the baseline's values, then with the reference run (same tolerances and directions, only
 * for the metrics the baseline names, so a user decides what is checked).
 */
export function judge(run: JudgedRun, baseline: Baseline, reference?: ReferenceRun): Verdict {
  const tests = new ItemTests(baseline);
  const checks: Check[] = [];
  const checked: string[] = [];
  const unfilled: string[] = [];
  const against: Check['against'] = reference?.pinned ? 'pinned-run' : 'last-good';
  const compare = (name: string, e: Expectation, expected: number, ref?: ReferenceRun) => {
    const actual = run.metrics[name];
    const base = {
      metric: name,
      against: ref ? against : 'baseline',
      expected,
      tolerance: e.tolerance,
    } as const;
    if (actual === undefined || !Number.isFinite(actual)) {
      checks.push({ ...base, actual: null, delta: null });
      return;
    }
    const scores = run.items?.scores[name];
    const test: Partial<Check> = ref
      ? ref.items && run.items
        ? tests.paired(run.items, ref.items, name, worseSide(e))
        : { test: 'tolerance' }
      : scores
        ? tests.published(scores, e, expected)
        : { test: 'tolerance' };
    checks.push({ ...base, actual, delta: actual - expected, ...test });
  };
  for (const [name, e] of Object.entries(baseline.metrics)) {
    if (e.value === null) unfilled.push(name);
    else {
      checked.push(name);
      compare(name, e, e.value);
    }
    const previous = reference?.metrics[name];
    if (previous !== undefined && Number.isFinite(previous)) compare(name, e, previous, reference);
  }
  const judged = (c: Check) => !baseline.family || baseline.family.includes(c.metric);
  for (const c of checks) if (!judged(c)) c.outsideFamily = true;
  const tested = checks.filter((c) => c.p !== undefined && judged(c));
  adjustPValues(
    tested.map((c) => c.p!),
    baseline.correction,
  ).forEach((p, i) => (tested[i]!.pAdjusted = p));
  for (const c of checks) {
    const e = baseline.metrics[c.metric]!;
    c.regressed =
      c.actual === null ||
      (judged(c) &&
        worseBy(e, c.expected, c.actual) &&
        (c.pAdjusted === undefined || c.pAdjusted < baseline.alpha));
  }
  const failures = checks.filter((c) => c.regressed);
  return {
    verdict: failures.length ? 'regressed' : 'pass',
    failures,
    checks,
    checked,
    unfilled,
    baseline: baseline.name,
    ...(reference && !reference.pinned ? { lastGoodRunId: reference.runId } : {}),
    ...(reference?.pinned ? { pinnedRunId: reference.runId } : {}),
    method: describeMethod(baseline, tested.length),
  };
}

/** What a check compares with, in words. */
export const AGAINST = {
  baseline: 'baseline',
  'last-good': 'last good run',
  'pinned-run': 'pinned run',
} as const;

/** What the test of a check found, e.g. "paired sign-flip over 12 items: diff 99% [-0.31, -0.12], p 0.0002 (adjusted 0.002)". */
export function describeTest(c: Check): string {
  if (!c.test || c.test === 'tolerance') return 'tolerance only (no per-item scores)';
  const ci = c.interval ? ` [${c.interval[0].toPrecision(3)}, ${c.interval[1].toPrecision(3)}]` : '';
  const p = c.p === undefined ? '' : `, p ${c.p.toPrecision(2)}`;
  const adj = c.outsideFamily
    ? ' (outside the declared family: not judged)'
    : c.pAdjusted === undefined || c.pAdjusted === c.p
      ? ''
      : ` (corrected ${c.pAdjusted.toPrecision(2)})`;
  return `${c.test} over ${c.items} items: difference${ci}${p}${adj}`;
}

export function describeFailure(f: Check): string {
  const against = AGAINST[f.against];
  if (f.actual === null) return `${f.metric}: missing from the run (expected ${f.expected}, vs ${against})`;
  const sign = f.delta! >= 0 ? '+' : '';
  const test = f.test ? `; ${describeTest(f)}` : '';
  return `${f.metric}: ${f.actual.toPrecision(4)} vs ${against} ${f.expected.toPrecision(4)} (${sign}${f.delta!.toPrecision(3)}, tolerance ${f.tolerance}${test})`;
}
