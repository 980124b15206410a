/**
 * Regression verdicts: a run's metrics against a baseline file (the paper's table, filled in by a user, or a
 * pinned earlier run) and against the last good run of the same config.
 *
 * Baseline file (YAML or JSON):
 *   name: god-sbj1-paper
 *   source: "LEA TMLR 2024, Table 3"        # where the numbers come from
 *   metrics:
 *     decode.nway50: { value: null, tolerance: 0.02, better: higher }   # null = not filled in yet
 *     decode.fid:    { value: 123.4, tolerance: 5, better: lower }
 * A metric regresses when it is worse than value by more than tolerance (`better: either` = any direction).
 * A stand-in metric (lib/metrics/definitions.ts, e.g. decode.proto_nway5) is refused: no paper table has it.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BadInputError, errorMessage } from '../errors.js';
import { metricDefinition } from '../metrics/definitions.js';

const expectation = z.strictObject({
  value: z.number().nullable(),
  tolerance: z.number().min(0),
  better: z.enum(['higher', 'lower', 'either']).default('either'),
});

export const baselineSchema = z.strictObject({
  name: z.string().min(1),
  source: z.string().min(1),
  metrics: z.record(z.string(), expectation),
});

export type Baseline = z.infer<typeof baselineSchema>;
export type Expectation = z.infer<typeof expectation>;

export interface Failure {
  metric: string;
  against: 'baseline' | 'last-good';
  expected: number;
  actual: number | null;
  /** actual - expected (null when the run lacks the metric) */
  delta: number | null;
  tolerance: number;
}

export interface Verdict {
  verdict: 'pass' | 'regressed';
  failures: Failure[];
  checked: string[];
  /** Baseline metrics with no value yet (nothing to compare). */
  unfilled: string[];
  baseline: string;
  lastGoodRunId?: string;
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

/**
 * Compares metrics with the baseline, then with the last good run (same tolerances and directions, only for
 * the metrics the baseline names, so a user decides what is checked).
 */
export function judge(
  metrics: Record<string, number>,
  baseline: Baseline,
  lastGood?: { runId: string; metrics: Record<string, number> },
): Verdict {
  const failures: Failure[] = [];
  const checked: string[] = [];
  const unfilled: string[] = [];
  const compare = (name: string, e: Expectation, expected: number, against: Failure['against']) => {
    const actual = metrics[name];
    if (actual === undefined || !Number.isFinite(actual)) {
      failures.push({ metric: name, against, expected, actual: null, delta: null, tolerance: e.tolerance });
    } else if (worseBy(e, expected, actual)) {
      failures.push({
        metric: name,
        against,
        expected,
        actual,
        delta: actual - expected,
        tolerance: e.tolerance,
      });
    }
  };
  for (const [name, e] of Object.entries(baseline.metrics)) {
    if (e.value === null) unfilled.push(name);
    else {
      checked.push(name);
      compare(name, e, e.value, 'baseline');
    }
    const previous = lastGood?.metrics[name];
    if (previous !== undefined) compare(name, e, previous, 'last-good');
  }
  return {
    verdict: failures.length ? 'regressed' : 'pass',
    failures,
    checked,
    unfilled,
    baseline: baseline.name,
    ...(lastGood ? { lastGoodRunId: lastGood.runId } : {}),
  };
}

export function describeFailure(f: Failure): string {
  if (f.actual === null) return `${f.metric}: missing from the run (expected ${f.expected}, vs ${f.against})`;
  const sign = f.delta! >= 0 ? '+' : '';
  return `${f.metric}: ${f.actual.toPrecision(4)} vs ${f.against} ${f.expected.toPrecision(4)} (${sign}${f.delta!.toPrecision(3)}, tolerance ${f.tolerance})`;
}
