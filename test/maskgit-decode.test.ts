/**
 * MaskGIT decoding: the still-masked counts per step against the authors' predict_eval loop transcribed in
 * NumPy (and the spec's 256-token list), the confidence rule, the categorical draws, determinism by seed,
 * and the 5-samples batch layout.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../lib/compute/rng.js';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import { maskgitDecode, remaskBelowCut, repeatForSamples } from '../lib/models/maskgit-decode.js';
import { BadInputError } from '../lib/errors.js';
import { runOracle } from './helpers/oracle.js';

/** Random logits for every call, from their own seeded stream. */
function randomLogits(rows: number, length: number, vocab: number, seed: number) {
  const rng = new Rng(seed, 'logits');
  return async () => rng.fillNormal(new Float32Array(rows * length * vocab), 0, 2);
}

/** The paper's decoding settings (spec §3): 11 steps, choice temperature 4.5, 5 samples per item. */
const PAPER = (loadExperimentConfig('configs/paper/god-sbj_1.yaml') as ReproductionConfig).decoding;

function countsOf(masked: Int32Array, steps: number, rows: number, row: number): number[] {
  return Array.from({ length: steps }, (_, t) => masked[t * rows + row]!);
}

// The authors' loop (src/transformer_models.py predict_eval) with random probabilities, counting the
// positions masked after each step.
const REFERENCE = `
import json, sys, numpy as np
rng = np.random.default_rng(0)
out = {}
for L in json.loads(sys.argv[1]):
    T = 11; cur = np.full(L, -1); counts = []
    for t in range(T):
        unknown = cur == -1
        probs = np.where(unknown, rng.uniform(0.01, 1, L), np.inf)
        ratio = (t + 1) / T
        mask_len = np.floor(L * np.cos(np.pi / 2 * ratio))
        mask_len = max(1, min(unknown.sum() - 1, mask_len))
        confidence = np.log(probs) + 4.5 * (1 - ratio) * rng.gumbel(size=L)
        cut_off = np.sort(confidence)[int(mask_len)]
        masking = confidence < cut_off
        cur = np.where(masking, -1, 0)
        counts.append(int(masking.sum()))
    out[L] = counts
print(json.dumps(out))
`;

describe('MaskGIT decoding', () => {
  it('leaves 253, 245, 232, 215, 193, 167, 138, 106, 72, 36, 1 of 256 tokens masked (spec §3)', async () => {
    const res = await maskgitDecode({
      steps: PAPER.steps,
      choiceTemperature: PAPER.choiceTemperature,
      logits: randomLogits(3, 256, 32, 1),
      rows: 3,
      length: 256,
      vocab: 32,
      maskId: 32,
      rng: new Rng(1),
    });
    for (let b = 0; b < 3; b++)
      assert.deepEqual(
        countsOf(res.maskedAfterStep, 11, 3, b),
        [253, 245, 232, 215, 193, 167, 138, 106, 72, 36, 1],
      );
  });

  it('follows the authors clamp rule for other lengths, 16 tokens included', async () => {
    const lengths = [16, 17, 40, 100, 256];
    const ref = JSON.parse(runOracle(REFERENCE, [JSON.stringify(lengths)])) as Record<string, number[]>;
    // Each step must fix at least one position, so 16 tokens give 15, 14, 13, 12, 11 before the cosine
    // schedule catches up (the unclamped floor would be 15, 15, 14, 13, 12).
    assert.deepEqual(ref['16'], [15, 14, 13, 12, 11, 10, 8, 6, 4, 2, 1]);
    for (const L of lengths) {
      const res = await maskgitDecode({
        steps: PAPER.steps,
        choiceTemperature: PAPER.choiceTemperature,
        logits: randomLogits(2, L, 8, L),
        rows: 2,
        length: L,
        vocab: 8,
        maskId: 99,
        rng: new Rng(L),
      });
      for (let b = 0; b < 2; b++)
        assert.deepEqual(countsOf(res.maskedAfterStep, 11, 2, b), ref[String(L)], `length ${L}`);
    }
  });

  it('keeps fixed tokens, feeds the logits function the current masks, and returns a full draw', async () => {
    const rows = 2;
    const L = 16;
    const V = 5;
    const seen: Int32Array[] = [];
    const rng = new Rng(9, 'logits');
    const res = await maskgitDecode({
      steps: PAPER.steps,
      choiceTemperature: PAPER.choiceTemperature,
      logits: async (tokens) => {
        seen.push(tokens);
        return rng.fillNormal(new Float32Array(rows * L * V));
      },
      rows,
      length: L,
      vocab: V,
      maskId: V,
      rng: new Rng(9),
    });
    assert.equal(seen.length, 11);
    assert.ok(seen[0]!.every((v) => v === V));
    for (let t = 1; t < seen.length; t++) {
      for (let b = 0; b < rows; b++) {
        const masked = seen[t]!.subarray(b * L, (b + 1) * L).filter((v) => v === V).length;
        assert.equal(masked, res.maskedAfterStep[(t - 1) * rows + b]);
      }
      seen[t - 1]!.forEach((v, pos) => {
        if (v !== V) assert.equal(seen[t]![pos], v, 'a fixed token changed');
      });
    }
    seen[10]!.forEach((v, pos) => {
      if (v !== V) assert.equal(res.tokens[pos], v);
    });
    assert.ok(res.tokens.every((v) => v >= 0 && v < V));
  });

  it('is reproducible from its seed', async () => {
    const run = (seed: number) =>
      maskgitDecode({
        steps: PAPER.steps,
        choiceTemperature: PAPER.choiceTemperature,
        logits: randomLogits(4, 16, 8, 3),
        rows: 4,
        length: 16,
        vocab: 8,
        maskId: 8,
        rng: new Rng(seed),
      });
    assert.deepEqual((await run(5)).tokens, (await run(5)).tokens);
    assert.notDeepEqual((await run(5)).tokens, (await run(6)).tokens);
  });

  it('draws codes from the softmax at temperature 1', async () => {
    // One step: the output is the first draw at every position, unfiltered.
    const rows = 40;
    const L = 256;
    const logitRow = [0, 1, 2, -1];
    const res = await maskgitDecode({
      choiceTemperature: PAPER.choiceTemperature,
      logits: async () => Float32Array.from({ length: rows * L * 4 }, (_, k) => logitRow[k % 4]!),
      rows,
      length: L,
      vocab: 4,
      maskId: 4,
      rng: new Rng(11),
      steps: 1,
    });
    const z = logitRow.reduce((s, v) => s + Math.exp(v), 0);
    const counts = [0, 0, 0, 0];
    res.tokens.forEach((v) => counts[v]!++);
    const total = rows * L;
    let chi2 = 0;
    logitRow.forEach((v, c) => {
      const expected = (total * Math.exp(v)) / z;
      chi2 += (counts[c]! - expected) ** 2 / expected;
    });
    assert.ok(chi2 < 16.3, `chi-square ${chi2} with 3 degrees of freedom`); // p = 0.001
  });

  it('re-masks the positions strictly below the n-th smallest confidence', () => {
    assert.deepEqual([...remaskBelowCut(Float64Array.from([3, 1, Infinity, 2, 0]), 2)], [0, 1, 0, 0, 1]);
    // ties at the cut stay fixed, as in the reference
    assert.deepEqual([...remaskBelowCut(Float64Array.from([1, 1, 1, 2]), 1)], [0, 0, 0, 0]);
  });

  it('fixes the most confident draws first when the Gumbel noise is off', async () => {
    // Position i allows only its first i + 1 codes, equally likely, so log p(draw) = −log(i + 1) whatever
    // is drawn: confidence falls with i, and after step t exactly positions 0..t are fixed.
    const L = 16;
    const logits = Float32Array.from({ length: L * L }, (_, k) => (k % L <= Math.floor(k / L) ? 0 : -1e9));
    const seen: Int32Array[] = [];
    const res = await maskgitDecode({
      steps: PAPER.steps,
      logits: async (tokens) => {
        seen.push(tokens);
        return logits;
      },
      rows: 1,
      length: L,
      vocab: L,
      maskId: L,
      rng: new Rng(2),
      choiceTemperature: 0,
    });
    for (let t = 1; t < 5; t++) {
      const fixed = [...seen[t]!].flatMap((v, i) => (v === L ? [] : [i]));
      assert.deepEqual(
        fixed,
        Array.from({ length: t }, (_, i) => i),
        `after step ${t}`,
      );
    }
    res.tokens.forEach((v, i) => assert.ok(v <= i, `position ${i} drew disallowed code ${v}`));
  });

  it('repeats conditioning rows item-major for 5 samples per item', () => {
    const x = Float32Array.from([1, 2, 3, 4]);
    assert.equal(PAPER.samples, 5);
    assert.deepEqual(
      [...repeatForSamples(x, 2, 2, PAPER.samples)],
      [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 3, 4, 3, 4],
    );
  });

  it('rejects bad options and wrongly sized logits', async () => {
    const base = {
      steps: PAPER.steps,
      choiceTemperature: PAPER.choiceTemperature,
      logits: randomLogits(1, 4, 3, 1),
      rows: 1,
      length: 4,
      vocab: 3,
      maskId: 3,
      rng: new Rng(1),
    };
    await assert.rejects(maskgitDecode({ ...base, maskId: 1 }), /mask id 1 must be an int32 outside/);
    await assert.rejects(maskgitDecode({ ...base, rows: 0 }), BadInputError);
    await assert.rejects(maskgitDecode({ ...base, length: 1 }), /length must be an integer >= 2/);
    await assert.rejects(maskgitDecode({ ...base, choiceTemperature: -1 }), /choice temperature/);
    await assert.rejects(
      maskgitDecode({ ...base, logits: async () => new Float32Array(5) }),
      /returned 5 values/,
    );
  });
});
