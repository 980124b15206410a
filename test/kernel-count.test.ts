/**
 * bench/count-kernels.ts: the count of a function whose kernels are known, and what bench/kernel-counts.ts relies
 * on to count paper-structure steps at reduced sizes: a step's kernels do not change with width or tokens while
 * the size-dependent choices of lib/models/fused/pieces.ts's backward pieces come out as at the paper's size (from 2^18
 * weights an explicit transpose in the backward, from 2^16 entries column sums as an einsum), and do otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { countKernels, countStep, type StepKernels } from '../bench/count-kernels.js';
import { aeStep, maskGitStep, type ModelStep } from '../bench/model-steps.js';
import { initCompute } from '../lib/compute/backend.js';

before(async () => {
  await initCompute();
});

test('countKernels counts each dispatched kernel once, and a custom-gradient op only by the kernels it runs', async () => {
  const a = tf.ones([2, 2]);
  const double = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.mul(args[0] as tf.Tensor, 2),
    gradFunc: (dy: tf.Tensor) => dy,
  }));
  const count = await countKernels(() => tf.tidy(() => double(tf.matMul(tf.add(a, a), a))).dispose());
  assert.deepEqual(count, { total: 3, byName: { Add: 1, BatchMatMul: 1, Multiply: 1 } });
  a.dispose();
});

async function stepKernels(s: ModelStep): Promise<StepKernels> {
  try {
    return await countStep(s.params, s.opt, s.loss);
  } finally {
    s.dispose();
  }
}

/** One block each side, the paper's 16 heads and 8 ROIs; `width` is every width, MLP included. */
const ae = (width: number, tokens: number, batch: number) =>
  stepKernels(
    aeStep(
      {
        roiSizes: [7, 5, 6, 4, 8, 5, 6, 7],
        tokensPerRoi: tokens / 8,
        width,
        depth: 1,
        heads: 16,
        mlpRatio: 1,
        latent: 32,
        decoderWidth: width,
        decoderDepth: 1,
        decoderHeads: 16,
        eps: 1e-5,
      },
      batch,
    ),
  );

const maskGit = (width: number, tokens: number, batch: number) =>
  stepKernels(
    maskGitStep(
      {
        codes: 16,
        classSlots: 3,
        length: tokens,
        featureDim: 8,
        width,
        depth: 1,
        heads: 16,
        mlpHidden: width,
        dropout: 0.01,
        minMaskRate: 0.5,
        labelSmoothing: 0.1,
        numerics: 'lea-port',
      },
      batch,
    ),
  );

/**
 * A model's step at width 512 (`tokens` tokens, batch 2) has the kernels it has at width 768, at twice the tokens and
 * with one more example, and more than at width 64: below 2^18 weights the backward's dy·Wᵀ needs no explicit
 * transpose.
 */
async function checkSizeInvariance(
  step: (width: number, tokens: number, batch: number) => Promise<StepKernels>,
  tokens: number,
  narrowDiffers: boolean,
): Promise<void> {
  const reference = await step(512, tokens, 2);
  assert.deepEqual(await step(768, tokens, 2), reference);
  assert.deepEqual(await step(512, 2 * tokens, 2), reference);
  assert.deepEqual(await step(512, tokens, 3), reference);
  const narrow = await step(64, tokens, 2);
  if (narrowDiffers)
    assert.ok(narrow.step.total < reference.step.total, `${narrow.step.total} vs ${reference.step.total}`);
  else assert.deepEqual(narrow, reference);
  assert.ok(reference.forward > 0 && reference.backward > 0 && reference.update > 0);
}

// At 64 tokens and batch 2 every [tokens·batch, width] column sum has the paper's 2^16 entries or more from width
// 512. The batch does not change the count: the CLS and mask tokens broadcast by an Add (one Sum in the backward),
// not Tile (a Slice and an Add per example).
test('fMRI autoencoder: the kernels of a step do not change from width 512 up or with tokens and batch, but do below it', () =>
  checkSizeInvariance(ae, 64, true));

// MaskGIT's step is plain tfjs autodiff, with no size-dependent backward pieces: its kernels are the same at any width.
test('MaskGIT: the kernels of a step do not change with width, tokens or batch', () =>
  checkSizeInvariance(maskGit, 128, false));
