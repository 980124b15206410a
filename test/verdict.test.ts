/**
 * Verdicts that know noise, seed suites and comparisons, on hand-made item scores (no servers): the paired
 * sign-flip test against a run, the bootstrap against a published value, the family correction, how seeds
 * reach a plan's stages, pooled scores and stage differences. The statistical routines themselves are checked
 * against SciPy and statsmodels in stats.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import { Rng } from '../lib/compute/rng.js';
import { pairedItems, poolScores, type ItemScores } from '../lib/metrics/scores.js';
import { compareMetrics, jsonDifferences, stageDifferences } from '../lib/pipeline/compare.js';
import { buildPlan } from '../lib/pipeline/plan.js';
import { describeFailure, judge, parseBaseline, type Baseline } from '../lib/pipeline/regression.js';
import { seedMembers, sdMetrics } from '../lib/pipeline/suite.js';
import { mean } from '../lib/stats/bootstrap.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `test/${i}`);

/** Item scores around `centre` with item-to-item spread, drawn from a seeded stream. */
function scores(n: number, centre: number, seed: number, shift = 0): ItemScores {
  const rng = new Rng(seed, 'verdict-test');
  const s = Float64Array.from({ length: n }, () => centre + 0.1 * rng.normal() + shift);
  return { items: ids(n), scores: { 'decode.twoway_pcc': s } };
}

const baseline = (extra: string): Baseline =>
  parseBaseline(
    `name: t\nsource: test\n${extra}\nmetrics:\n  decode.twoway_pcc: { value: null, tolerance: 0, better: higher }\n`,
    'test.yaml',
  );

const judged = (s: ItemScores) => ({
  metrics: { 'decode.twoway_pcc': mean(s.scores['decode.twoway_pcc']!) },
  items: s,
});

test('against a run: a paired sign-flip test on items; noise passes, a clear drop regresses', () => {
  const reference = scores(12, 0.8, 1);
  const ref = { runId: 'ref', pinned: true, ...judged(reference) };
  // The same items with independent noise of the same size: no drop the test can see.
  const noisy: ItemScores = {
    items: reference.items,
    scores: {
      'decode.twoway_pcc': reference.scores['decode.twoway_pcc']!.map(
        (v, i) => v + 0.05 * new Rng(i, 'noise').normal(),
      ),
    },
  };
  const pass = judge(judged(noisy), baseline(''), ref);
  assert.equal(pass.verdict, 'pass', JSON.stringify(pass.checks));
  assert.equal(pass.pinnedRunId, 'ref');
  const check = pass.checks![0]!;
  assert.equal(check.test, 'paired sign-flip');
  assert.equal(check.items, 12);
  assert.ok(check.p! > 0.01);
  // Every item 0.2 lower: the exact one-sided test's p is 1/2^12, the smallest 12 items can give.
  const worse = scores(12, 0.8, 1, -0.2);
  const bad = judge(judged(worse), baseline(''), ref);
  assert.equal(bad.verdict, 'regressed');
  assert.equal(bad.failures[0]!.p, 1 / 4096);
  assert.ok(bad.failures[0]!.interval![1] < 0, 'the difference interval lies below 0');
  assert.match(
    describeFailure(bad.failures[0]!),
    /vs pinned run .*paired sign-flip over 12 items: difference \[/,
  );
  // The same drop within the tolerance is not a regression, however significant.
  const tolerant = parseBaseline(
    'name: t\nsource: test\nmetrics:\n  decode.twoway_pcc: { value: null, tolerance: 0.25, better: higher }\n',
    'test.yaml',
  );
  assert.equal(judge(judged(worse), tolerant, ref).verdict, 'pass');
  // Pairing is by item id: the reference's items in another order give the same test.
  const shuffled: ItemScores = {
    items: [...reference.items].reverse(),
    scores: { 'decode.twoway_pcc': reference.scores['decode.twoway_pcc']!.slice().reverse() },
  };
  const again = judge(judged(worse), baseline(''), { ...ref, items: shuffled });
  assert.equal(again.failures[0]!.p, 1 / 4096);
});

test('against a published value: regressed only when it lies outside the run interval by more than the tolerance', () => {
  const run = judged(scores(50, 0.8, 2));
  const value = run.metrics['decode.twoway_pcc'];
  const at = (v: number, tol = 0) =>
    judge(
      run,
      parseBaseline(
        `name: t\nsource: test\nmetrics:\n  decode.twoway_pcc: { value: ${v}, tolerance: ${tol}, better: higher }\n`,
        'b.yaml',
      ),
    );
  // 0.1 spread over 50 items: a standard error of about 0.014
  assert.equal(at(value + 0.01).verdict, 'pass', 'a paper value inside the interval');
  const far = at(value + 0.1);
  assert.equal(far.verdict, 'regressed');
  assert.equal(far.failures[0]!.test, 'bootstrap');
  assert.equal(far.failures[0]!.p, 1 / 10_001, 'no replicate reaches it: the +1 floor');
  assert.equal(at(value + 0.1, 0.09).verdict, 'pass', 'outside the interval, but by less than the tolerance');
  // A metric without item scores falls back to the tolerance alone and says so.
  const fid = judge(
    { metrics: { 'decode.fid': 20 } },
    parseBaseline(
      'name: t\nsource: test\nmetrics:\n  decode.fid: { value: 10, tolerance: 5, better: lower }\n',
      'b.yaml',
    ),
  );
  assert.equal(fid.verdict, 'regressed');
  assert.equal(fid.failures[0]!.test, 'tolerance');
  assert.match(describeFailure(fid.failures[0]!), /tolerance only/);
});

test('the tests of a verdict are one family, corrected as the baseline says', () => {
  const metrics = ['decode.twoway_pcc', 'decode.twoway_mse', 'decode.twoway_snr'];
  const make = (shift: number): ItemScores => ({
    items: ids(12),
    scores: Object.fromEntries(
      metrics.map((m, k) => [m, scores(12, 0.7, 10 + k, shift).scores['decode.twoway_pcc']!]),
    ),
  });
  const ref = make(0);
  const cand = make(-0.3);
  const meta = (s: ItemScores) => Object.fromEntries(metrics.map((m) => [m, mean(s.scores[m]!)]));
  const file = (correction: string) =>
    parseBaseline(
      `name: t\nsource: test\ncorrection: ${correction}\nmetrics:\n` +
        metrics.map((m) => `  ${m}: { value: null, tolerance: 0, better: higher }\n`).join(''),
      'b.yaml',
    );
  const holm = judge({ metrics: meta(cand), items: cand }, file('holm'), {
    runId: 'r',
    pinned: false,
    metrics: meta(ref),
    items: ref,
  });
  assert.equal(holm.lastGoodRunId, 'r');
  // Three p-values of 1/4096: Holm multiplies the smallest by 3, the next by 2, then carries the maximum.
  assert.deepEqual(
    holm.checks!.map((c) => c.pAdjusted),
    [3 / 4096, 3 / 4096, 3 / 4096],
  );
  assert.match(holm.method!, /holm correction over 3 tests/);
  const none = judge({ metrics: meta(cand), items: cand }, file('none'), {
    runId: 'r',
    pinned: false,
    metrics: meta(ref),
    items: ref,
  });
  assert.deepEqual(
    none.checks!.map((c) => c.pAdjusted),
    [1 / 4096, 1 / 4096, 1 / 4096],
  );
});

test('a seed suite: each seed is a member; sampling seeds share every trained stage', () => {
  const smoke = loadExperimentConfig('configs/smoke.yaml') as ReproductionConfig;
  const stagesOf = (cfg: ReproductionConfig) =>
    new Map(buildPlan(cfg).map((s) => [s.name, JSON.stringify(s.config)]));
  const base = stagesOf(smoke);
  const differing = (cfg: ReproductionConfig) =>
    [...stagesOf(cfg)].filter(([name, config]) => base.get(name) !== config).map(([name]) => name);

  const sampling = seedMembers({ ...smoke, seeds: [666, 7], seedScope: 'sampling' });
  assert.deepEqual(
    sampling.map((m) => m.name),
    ['smoke-seed666', 'smoke-seed7'],
  );
  assert.deepEqual(
    differing(sampling[0]!),
    ['metrics'],
    'the base seed as samplingSeed: only metrics names it',
  );
  assert.deepEqual(differing(sampling[1]!), ['decode', 'metrics']);

  const training = seedMembers({ ...smoke, seeds: [666, 7] });
  assert.deepEqual(differing(training[0]!), [], 'the base seed is the plain run: every stage cached');
  assert.deepEqual(differing(training[1]!).sort(), [
    'decode',
    'fmri-ae',
    'image-features',
    'mae',
    'maskgit',
    'metrics',
    'tokenizer',
  ]);
  assert.deepEqual(seedMembers(smoke), [smoke], 'a config without seeds is its own member');
});

test('pooled scores pair by item id; sd over runs; stage differences name what changed', () => {
  const a: ItemScores = {
    items: ['x', 'y', 'z'],
    scores: { m: Float64Array.of(1, 2, 3), only: Float64Array.of(1, 1, 1) },
  };
  const b: ItemScores = { items: ['z', 'y', 'w'], scores: { m: Float64Array.of(6, 4, 0) } };
  const pooled = poolScores([a, b])!;
  assert.deepEqual(pooled.items, ['y', 'z']);
  assert.deepEqual([...pooled.scores.m!], [3, 4.5]);
  assert.equal(pooled.scores.only, undefined, 'a metric one run lacks is not pooled');
  assert.equal(poolScores([a, { items: ['q'], scores: { m: Float64Array.of(1) } }]), undefined);
  assert.deepEqual(pairedItems(a, b, 'm'), { a: Float64Array.of(2, 3), b: Float64Array.of(4, 6) });

  assert.deepEqual(
    sdMetrics([
      { status: 'completed', metrics: { m: 1 } },
      { status: 'completed', metrics: { m: 3 } },
      { status: 'failed', metrics: { m: 100 } },
    ]),
    { m: Math.SQRT2 },
  );

  assert.deepEqual(jsonDifferences({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 3] }, d: 'x' }), [
    'b.c: [1,2] → [1,3]',
    'd: (absent) → "x"',
  ]);
  const stage = {
    name: 'ridge',
    key: 'k1',
    codeVersion: '1',
    config: { alpha: 1 },
    inputs: { l: { key: 'a' } },
  };
  assert.deepEqual(
    stageDifferences(
      [stage, { name: 'prepare', key: 'p' }],
      [
        { ...stage, key: 'k2', config: { alpha: 1e7 }, backend: 'wasm' },
        { name: 'prepare', key: 'p' },
      ],
    ),
    [{ stage: 'ridge', differences: ['config alpha: 1 → 10000000', 'backend (unknown) → wasm'] }],
  );

  const rows = compareMetrics(
    { runId: 'a', metrics: { m: 2 }, items: a },
    { runId: 'b', metrics: { m: 5 }, items: b },
    { alpha: 0.05, resamples: 1000, correction: 'holm' },
  );
  assert.equal(rows[0]!.test, 'paired sign-flip');
  assert.equal(rows[0]!.items, 2);
  assert.equal(rows[0]!.difference, 3);
  // the same mean summed in another order differs by float rounding only: no difference
  const [x, y] = [0.1 + 0.2 + 0.3, 0.3 + 0.2 + 0.1];
  assert.notEqual(x, y);
  const same = compareMetrics(
    { runId: 'a', metrics: { m: x } },
    { runId: 'b', metrics: { m: y } },
    { alpha: 0.05, resamples: 1000, correction: 'holm' },
  );
  assert.equal(same[0]!.difference, 0);
});
