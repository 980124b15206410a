/**
 * Sweeps without servers (issue 34): the grid flags and their parse (as `--set` parses a value), the points,
 * their names and the baseline point, the seeded sample; what a family of metrics can detect with the exact
 * sign-flip test, checked against the test itself; declared families in compareMetrics and in a baseline's
 * verdict; the best point marked only where its difference is significant.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyOverrides, loadExperimentConfig } from '../lib/config/experiment.js';
import type { ItemScores } from '../lib/metrics/scores.js';
import { compareMetrics, detectability, type ComparedRun } from '../lib/pipeline/compare.js';
import { judge, parseBaseline } from '../lib/pipeline/regression.js';
import {
  compareSweep,
  parseGridArg,
  parsePointArg,
  pointOverrides,
  sweepDefinition,
  sweepPlan,
  type SweepOutcome,
} from '../lib/pipeline/sweep.js';
import { adjustPValues } from '../lib/stats/multiple.js';
import { signFlipTest } from '../lib/stats/paired.js';
import { explain, runLea } from './helpers/lea.js';

test('--grid values parse as --set parses one; lists and quoted commas stay whole', () => {
  assert.deepEqual(parseGridArg('decoding.steps=4,8,11'), ['decoding.steps', [4, 8, 11]]);
  assert.deepEqual(parseGridArg('alignment.cvAlphas=[1],[10, 100]'), [
    'alignment.cvAlphas',
    [[1], [10, 100]],
  ]);
  assert.deepEqual(parseGridArg('data.imageResize=bilinear,"bi,cubic"'), [
    'data.imageResize',
    ['bilinear', 'bi,cubic'],
  ]);
  assert.deepEqual(parsePointArg('decoding.steps=11,alignment.cvAlphas=[10]'), {
    'decoding.steps': 11,
    'alignment.cvAlphas': [10],
  });
  assert.throws(() => parseGridArg('decoding.steps'), /--grid "decoding.steps": expected key.path=v1,v2/);
  assert.throws(() => parseGridArg('decoding.steps=4,,8'), /an empty value/);
  assert.throws(() => parseGridArg('decoding..steps=4'), /not a dotted config path/);
  assert.throws(
    () => sweepDefinition(undefined, { grid: { 'decoding.steps': [4, 4] } }),
    /invalid sweep: grid: the values of a key must differ/,
  );
  assert.throws(() => sweepDefinition(undefined, {}), /--grid: none given/);
});

test('points: grid order, names from the overrides, the baseline point, a seeded sample that keeps it', () => {
  const cfg = loadExperimentConfig('configs/smoke.yaml');
  const grid = { 'decoding.steps': [4, 11], 'alignment.ridgeAlpha': [10, 500, 1000] };
  const plan = sweepPlan('smoke', cfg, sweepDefinition(undefined, { grid }));
  assert.deepEqual(
    plan.points.map((p) => p.name),
    [
      'smoke-steps4-ridgealpha10',
      'smoke-steps4-ridgealpha500',
      'smoke-steps4-ridgealpha1000',
      'smoke-steps11-ridgealpha10',
      'smoke-steps11-ridgealpha500',
      'smoke-steps11-ridgealpha1000',
    ],
  );
  assert.equal(plan.points[0]!.label, 'decoding.steps=4 alignment.ridgeAlpha=10');
  // the point with the config's own values (steps 11, ridgeAlpha 500)
  assert.equal(plan.baseline, 'smoke-steps11-ridgealpha500');
  const chosen = sweepPlan(
    'smoke',
    cfg,
    sweepDefinition(undefined, { grid, baselinePoint: { 'decoding.steps': 4, 'alignment.ridgeAlpha': 10 } }),
  );
  assert.equal(chosen.baseline, 'smoke-steps4-ridgealpha10');
  assert.throws(
    () =>
      sweepPlan('smoke', cfg, sweepDefinition(undefined, { grid, baselinePoint: { 'decoding.steps': 4 } })),
    /--baseline-point: 3 points of the grid match decoding.steps=4/,
  );
  for (const seed of [0, 1, 2, 3]) {
    const sampled = sweepPlan(
      'smoke',
      cfg,
      sweepDefinition(undefined, { grid, sample: 3, sampleSeed: seed }),
    );
    assert.equal(sampled.points.length, 3);
    assert.ok(sampled.points.some((p) => p.name === sampled.baseline));
    const again = sweepPlan('smoke', cfg, sweepDefinition(undefined, { grid, sample: 3, sampleSeed: seed }));
    assert.deepEqual(again.points, sampled.points);
  }
  // a point's overrides set exactly its values through the --set parser
  const raw = applyOverrides(
    {},
    pointOverrides({ ...plan.points[0]!, values: { 'a.b': [1, 'x'], c: 'y' } }),
    't',
  );
  assert.deepEqual(raw, { a: { b: [1, 'x'] }, c: 'y' });
});

test('lea sweep --list prints the points; a bad point is refused naming it (exit 2)', () => {
  const list = runLea(['sweep', 'configs/sweeps/smoke-alpha-steps.yaml', '--list']);
  assert.equal(list.code, 0, explain(list));
  assert.equal(list.stdout.trim().split('\n').length, 6);
  assert.match(
    list.stdout,
    /^smoke-steps11-cvalphas10 {2}decoding\.steps=11 alignment\.cvAlphas=\[10\] {2}\(baseline\)$/m,
  );
  const bad = runLea(['sweep', 'configs/smoke.yaml', '--grid', 'decoding.steps=0,4']);
  assert.equal(bad.code, 2, explain(bad));
  assert.match(bad.stderr, /point decoding\.steps=0: configs\/smoke\.yaml: invalid config/);
  const run = runLea(['run', 'configs/sweeps/smoke-alpha-steps.yaml']);
  assert.equal(run.code, 2, explain(run));
  assert.match(run.stderr, /has a sweep section: start it with lea sweep/);
});

/** The two-sided sign-flip p of k items moving up by 1 and n − k moving down by a little. */
const pWithConcordant = (n: number, k: number) =>
  signFlipTest(
    Float64Array.from({ length: n }, (_, i) => (i < k ? 1 : -1e-3)),
    {
      alternative: 'two-sided',
      resamples: 10_000,
    },
  ).p;

test('what a family can detect: the exact sign-flip bound, checked against the test', () => {
  // 12 items (the miniature): the smallest two-sided p is 2^-11, reached when all 12 move one way
  assert.equal(pWithConcordant(12, 12), 2 ** -11);
  const d18 = detectability(12, 18, { alpha: 0.01, resamples: 10_000, correction: 'holm' });
  assert.equal(d18.smallestAdjustedP, 18 / 2048); // 0.0088: 18 metrics can still decide, only unanimously
  assert.equal(d18.decidable, true);
  assert.equal(d18.minItems, 12);
  const d21 = detectability(12, 21, { alpha: 0.01, resamples: 10_000, correction: 'holm' });
  assert.equal(d21.decidable, false);
  assert.match(d21.text, /^cannot decide: .*2\^-11 .* 21 × that = 0\.010/);
  for (const m of [1, 4, 18]) {
    const { minItems } = detectability(12, m, { alpha: 0.01, resamples: 10_000, correction: 'holm' });
    // minItems moving one way reach the corrected level; one fewer cannot, whatever the magnitudes
    assert.ok(m * pWithConcordant(12, minItems!) < 0.01, `m ${m}: ${minItems} items`);
    assert.ok(m * pWithConcordant(12, minItems! - 1) >= 0.01, `m ${m}: ${minItems! - 1} items`);
  }
  // GOD's 50 items are tested with random sign patterns: p >= 2/(resamples + 1)
  const god = detectability(50, 18, { alpha: 0.01, resamples: 10_000, correction: 'holm' });
  assert.equal(god.smallestP, 2 / 10_001);
  assert.equal(god.minItems, undefined);
});

/** Item scores of 12 items: base + shift (one, or item by item), with a per-item wobble. */
function scores(metrics: Record<string, number | ((i: number) => number)>): ItemScores {
  const items = Array.from({ length: 12 }, (_, i) => `item${i}`);
  const at = (shift: number | ((i: number) => number), i: number) =>
    typeof shift === 'number' ? shift : shift(i);
  return {
    items,
    scores: Object.fromEntries(
      Object.entries(metrics).map(([m, shift]) => [
        m,
        Float64Array.from(items, (_, i) => 0.5 + at(shift, i) + (i % 2 ? 0.01 : -0.01) * (i % 3)),
      ]),
    ),
  };
}

function run(runId: string, shifts: Record<string, number | ((i: number) => number)>): ComparedRun {
  const items = scores(shifts);
  const metrics = Object.fromEntries(
    Object.entries(items.scores).map(([m, s]) => [m, s.reduce((a, b) => a + b, 0) / s.length]),
  );
  return { runId, metrics, items };
}

test('a declared family: only its metrics are corrected, together; the others keep their raw p', () => {
  const a = run('a', { 'decode.twoway_pcc': 0, 'decode.twoway_mse': 0, 'encode.pearson': 0 });
  const b = run('b', { 'decode.twoway_pcc': 0.1, 'decode.twoway_mse': 0.05, 'encode.pearson': 0.02 });
  const settings = { alpha: 0.01, resamples: 10_000, correction: 'holm' as const };
  const all = compareMetrics(a, b, settings);
  const declared = compareMetrics(a, b, { ...settings, family: ['decode.twoway_pcc', 'encode.pearson'] });
  const holm = adjustPValues(
    declared.filter((r) => r.metric !== 'decode.twoway_mse').map((r) => r.p!),
    'holm',
  );
  assert.deepEqual(
    declared.filter((r) => r.inFamily).map((r) => r.pAdjusted),
    holm,
  );
  const mse = declared.find((r) => r.metric === 'decode.twoway_mse')!;
  assert.equal(mse.inFamily, false);
  assert.equal(mse.pAdjusted, undefined);
  assert.equal(mse.p, all.find((r) => r.metric === 'decode.twoway_mse')!.p);
});

test('a baseline that declares its family judges only those metrics', () => {
  const text = (family: string) =>
    `name: t\nsource: test\n${family}metrics:\n` +
    '  decode.twoway_pcc: { value: 0.9, tolerance: 0, better: higher }\n' +
    '  encode.pearson: { value: 0.9, tolerance: 0, better: higher }\n';
  const run = { metrics: { 'decode.twoway_pcc': 0.95, 'encode.pearson': 0.5 } };
  assert.equal(judge(run, parseBaseline(text(''), 'b.yaml')).verdict, 'regressed');
  const declared = judge(run, parseBaseline(text('family: [decode.twoway_pcc]\n'), 'b.yaml'));
  assert.equal(declared.verdict, 'pass');
  assert.equal(declared.checks!.find((c) => c.metric === 'encode.pearson')!.outsideFamily, true);
  assert.match(declared.method!, /declared family \(decode\.twoway_pcc; the other metrics are not judged\)/);
  assert.throws(
    () => parseBaseline(text('family: [decode.fid]\n'), 'b.yaml'),
    /b\.yaml: invalid baseline: family: every metric of the family needs its entry under metrics/,
  );
});

test('the best point of a metric is marked only where its difference is better and significant', () => {
  const base = run('base', { 'decode.twoway_pcc': 0, 'decode.twoway_mse': 0 });
  // pcc: every item up by 0.2; mse: up on half the items, down on the others (higher on average, not significant)
  const much = run('much', { 'decode.twoway_pcc': 0.2, 'decode.twoway_mse': (i) => (i < 6 ? 0.03 : -0.02) });
  const outcome: SweepOutcome = {
    config: 'smoke',
    keys: ['decoding.steps'],
    baseline: 'p-base',
    points: [
      {
        name: 'p-base',
        label: 'decoding.steps=11',
        values: { 'decoding.steps': 11 },
        runIds: ['r1'],
        status: 'completed',
      },
      {
        name: 'p-much',
        label: 'decoding.steps=4',
        values: { 'decoding.steps': 4 },
        runIds: ['r2'],
        status: 'completed',
      },
      {
        name: 'p-fail',
        label: 'decoding.steps=8',
        values: { 'decoding.steps': 8 },
        runIds: ['r3'],
        status: 'failed',
        error: 'boom',
      },
    ],
  };
  const c = compareSweep(
    outcome,
    new Map([
      ['p-base', base],
      ['p-much', much],
    ]),
    { alpha: 0.01, resamples: 10_000, correction: 'holm' },
  );
  // every item moved up by 0.2: p = 2^-11, Holm over 2 metrics 2^-10 < 0.01
  assert.deepEqual(c.best, { 'decode.twoway_pcc': 'p-much' });
  const mse = c.rows[1]!.comparisons!.find((r) => r.metric === 'decode.twoway_mse')!;
  assert.ok(mse.difference! > 0 && mse.pAdjusted! >= 0.01, JSON.stringify(mse));
  assert.equal(c.rows[2]!.comparisons, undefined);
  assert.equal(c.detectability!.family, 2);
});
