/**
 * The statistics every interval and verdict rests on, against SciPy and statsmodels on the same draws
 * (test/oracles/stats_ref.py): bootstrap percentile and BCa intervals given the same resample indices, the
 * sign-flip permutation test (exact, and sampled on the same sign patterns), Holm and Bonferroni adjustments,
 * and the normal CDF and quantile the BCa interval uses.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../lib/compute/rng.js';
import { mean, overSamples } from '../lib/metrics/common.js';
import { describeIntervals, metricIntervals } from '../lib/metrics/intervals.js';
import { itemMeans } from '../lib/metrics/scores.js';
import { meanInterval, resampleIndices } from '../lib/stats/bootstrap.js';
import { adjustPValues } from '../lib/stats/multiple.js';
import { ndtr, ndtri } from '../lib/stats/normal.js';
import { drawSigns, signFlipTest, type Alternative } from '../lib/stats/paired.js';
import { runOracleFile } from './helpers/oracle.js';

const script = fileURLToPath(new URL('./oracles/stats_ref.py', import.meta.url));

async function oracle(cases: object[]): Promise<Record<string, unknown>[]> {
  const dir = await mkdtemp(join(tmpdir(), 'lea-stats-'));
  try {
    await writeFile(join(dir, 'cases.json'), JSON.stringify(cases));
    return JSON.parse(runOracleFile(script, [join(dir, 'cases.json')])) as Record<string, unknown>[];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

/** Per-item scores shaped like the metrics': 2-way fractions, n-way successes, correlations, skewed values. */
function scoreSets(): { name: string; values: Float64Array }[] {
  const rng = new Rng(7, 'stats-test');
  const of = (n: number, f: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => f(i));
  return [
    { name: 'twoway-12', values: of(12, () => Math.round(11 * (0.6 + 0.4 * rng.uniform())) / 11) },
    { name: 'nway-50', values: of(50, () => Math.round(1000 * rng.uniform() ** 2) / 1000) },
    { name: 'pearson-113', values: of(113, () => Math.tanh(rng.normal(0.4, 0.3))) },
    { name: 'skewed-30', values: of(30, () => Math.exp(rng.normal(0, 1))) },
  ];
}

describe('bootstrap intervals equal scipy.stats.bootstrap on the same resamples', () => {
  it('percentile and BCa, 95 % and 90 %, for item counts 12 to 113', async () => {
    const cases: { name: string; values: Float64Array; indices: Int32Array; level: number }[] = [];
    for (const [k, s] of scoreSets().entries())
      for (const level of [0.95, 0.9])
        cases.push({ ...s, level, indices: resampleIndices(s.values.length, 2000, new Rng(k, 'boot')) });
    const ref = await oracle(
      cases.map((c) => ({
        kind: 'bootstrap',
        values: [...c.values],
        indices: [...c.indices],
        level: c.level,
      })),
    );
    cases.forEach((c, i) => {
      for (const method of ['percentile', 'bca'] as const) {
        const ours = meanInterval(c.values, c.indices, { method, level: c.level });
        const theirs = ref[i]![method] as [number, number];
        close(ours[0], theirs[0], 1e-12, `${c.name} ${method} ${c.level} low`);
        close(ours[1], theirs[1], 1e-12, `${c.name} ${method} ${c.level} high`);
      }
    });
  });

  it('a degenerate bootstrap (every item the same) is the point, not NaN', () => {
    const v = new Float64Array(12).fill(1);
    const idx = resampleIndices(12, 100, new Rng(1));
    assert.deepEqual(meanInterval(v, idx, { method: 'bca', level: 0.95 }), [1, 1]);
  });
});

describe('the sign-flip test equals scipy.stats.permutation_test', () => {
  const diffs = (n: number, shift: number, seed: number) => {
    const rng = new Rng(seed, 'diffs');
    return Float64Array.from({ length: n }, () => Math.round(11 * rng.normal(shift, 0.2)) / 11);
  };
  const alternatives: Alternative[] = ['less', 'greater', 'two-sided'];

  it('exact over all 2^n patterns (n = 10, 12), with ties among the differences', async () => {
    const cases = [10, 12].flatMap((n) =>
      alternatives.map((alternative, k) => ({ d: diffs(n, -0.05 * k, n + k), alternative })),
    );
    const ref = await oracle(
      cases.map((c) => ({ kind: 'signflip', d: [...c.d], alternative: c.alternative, resamples: 9999 })),
    );
    cases.forEach((c, i) => {
      const ours = signFlipTest(c.d, { alternative: c.alternative, resamples: 9999 });
      assert.equal(ours.exact, true);
      close(ours.p, ref[i]!.p as number, 1e-12, `n=${c.d.length} ${c.alternative}`);
    });
  });

  it('sampled (n = 50) on the same sign patterns as a numpy transcription of its p-value', async () => {
    const cases = alternatives.map((alternative, k) => {
      const d = diffs(50, -0.03 * k, 50 + k);
      return { d, alternative, signs: drawSigns(50, 4000, new Rng(k, 'signs')) };
    });
    const ref = await oracle(
      cases.map((c) => ({ kind: 'signflip', d: [...c.d], alternative: c.alternative, signs: [...c.signs] })),
    );
    cases.forEach((c, i) => {
      const ours = signFlipTest(c.d, { alternative: c.alternative, resamples: 4000, signs: c.signs });
      assert.equal(ours.exact, false);
      close(ours.p, ref[i]!.p as number, 1e-12, `n=50 ${c.alternative}`);
    });
  });
});

describe('family corrections equal statsmodels multipletests', () => {
  it('holm and bonferroni, with ties and p-values near 1', async () => {
    const p = [0.0004, 0.03, 0.0004, 0.2, 0.011, 0.9, 0.049, 0.6];
    const ref = await oracle(['holm', 'bonferroni'].map((method) => ({ kind: 'correction', method, p })));
    (['holm', 'bonferroni'] as const).forEach((method, i) =>
      adjustPValues(p, method).forEach((v, k) =>
        close(v, (ref[i]!.adjusted as number[])[k]!, 1e-15, `${method} ${k}`),
      ),
    );
    assert.deepEqual(adjustPValues(p, 'none'), p);
  });
});

describe('normal CDF and quantile equal scipy.special', () => {
  it('ndtr and ndtri over the range an interval uses', async () => {
    const z = [-8, -5.5, -3, -1.96, -1, -0.1, 0, 0.3, 1.2, 2.5, 4, 7.9];
    const p = [1e-12, 1e-6, 0.001, 0.0125, 0.025, 0.2, 0.5, 0.7, 0.975, 0.9875, 0.999, 1 - 1e-9];
    const [ref] = await oracle([{ kind: 'normal', z, p }]);
    z.forEach((v, i) => close(ndtr(v), (ref!.ndtr as number[])[i]!, 1e-13, `ndtr(${v})`));
    p.forEach((v, i) => close(ndtri(v), (ref!.ndtri as number[])[i]!, 1e-12, `ndtri(${v})`));
  });
});

describe('metric intervals (lib/metrics/intervals.ts)', () => {
  it('resample items with their samples: the interval of the item means, one draw of item sets for all metrics', () => {
    const rng = new Rng(3, 'test/scores');
    const items = 12;
    const bySample = (shift: number) =>
      Array.from({ length: 5 }, () =>
        Array.from({ length: items }, (_, i) => i / items + shift * rng.uniform()),
      );
    const a = bySample(0.3);
    const b = bySample(0.1);
    const scores = overSamples(a.map((perItem) => ({ value: mean(perItem), chance: 0.5, perItem })));
    assert.deepEqual(scores.perItemBySample, a, "overSamples keeps each sample's item scores");
    const rows = [
      { name: 'a', value: scores.value, chance: 0.5, perItem: a },
      { name: 'b', value: 0, chance: null, perItem: b },
      { name: 'stack', value: 0.4, chance: null },
    ];
    const settings = { method: 'bca' as const, resamples: 500, level: 0.9 };
    const got = metricIntervals(rows, settings, 7);
    assert.deepEqual(Object.keys(got), ['a', 'b'], 'a metric without item scores has no interval');
    const indices = resampleIndices(items, 500, new Rng(7, 'metrics/bootstrap'));
    assert.deepEqual(got.a, meanInterval(itemMeans(a), indices, settings));
    assert.deepEqual(got.b, meanInterval(itemMeans(b), indices, settings));
    assert.ok(got.a![0] < scores.value && scores.value < got.a![1]);
    assert.deepEqual(
      Array.from(
        itemMeans([
          [1, 2],
          [3, 6],
        ]),
      ),
      [2, 4],
    );
    assert.match(describeIntervals(settings, 7), /^90% BCa bootstrap over test items \(500 resamples/);
  });
});
