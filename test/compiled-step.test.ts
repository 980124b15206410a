/**
 * Compiled training steps (lib/compute/tf-function.ts, lib/train/step.ts) against eager ones, at the miniature's
 * sizes (configs/smoke.yaml) for the three models a reproduction trains: graph steps equal eager ones bit for bit;
 * XLA steps agree within float rounding and repeat exactly; a function that would bake a per-call value in, or
 * reads a value back mid-step, is refused with the op named. Needs the native backend with the patched addon.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { countDispatches } from '../bench/count-kernels.js';
import { SMOKE_STEPS, type ModelStep } from '../bench/model-steps.js';
import { initCompute } from '../lib/compute/backend.js';
import type { CompileMode } from '../lib/compute/compile-modes.js';
import { Rng } from '../lib/compute/rng.js';
import { tidyValues } from '../lib/compute/values.js';
import { compileFunction, compiledModeFor } from '../lib/compute/tf-function.js';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import { MaskGit } from '../lib/models/maskgit.js';
import { LocalCheckpointStore } from '../lib/train/checkpoint.js';
import { train, type TrainSettings } from '../lib/train/loop.js';

const smoke = loadExperimentConfig('configs/smoke.yaml') as ReproductionConfig;
const BATCH = smoke.training.fmriAe.batchSize;

/** The miniature's three trained models, each over one fixed batch, built afresh from `seed`. */
const MODELS: Record<string, (seed: number) => ModelStep> = Object.fromEntries(
  Object.entries(SMOKE_STEPS).map(([name, build]) => [name, (seed: number) => build(BATCH, seed)]),
);

before(async () => {
  await initCompute();
  assert.equal(
    compiledModeFor('xla').mode,
    'xla',
    'the native backend with the patched addon (npm run setup)',
  );
});

/** Losses of `steps` steps in `mode`, and the parameters after them. */
function run(
  model: string,
  mode: CompileMode,
  steps: number,
  lr = 1e-3,
): { losses: number[]; params: Map<string, Float32Array> } {
  const s = (MODELS[model] as (seed: number) => ModelStep)(7);
  try {
    const step = s.stepper(mode, lr);
    const losses = Array.from({ length: steps }, () => step());
    const params = new Map([...s.params].map(([n, v]) => [n, v.dataSync() as Float32Array]));
    return { losses, params };
  } finally {
    s.dispose();
  }
}

function maxRelative(a: number[], b: number[]): number {
  return Math.max(...a.map((x, i) => Math.abs(x - (b[i] as number)) / Math.abs(b[i] as number)));
}

for (const model of Object.keys(MODELS)) {
  test(`${model}: graph steps give eager's losses and weights bit for bit`, () => {
    const eager = run(model, 'eager', 20);
    const graph = run(model, 'graph', 20);
    assert.deepEqual(graph.losses, eager.losses);
    for (const [name, values] of eager.params) assert.deepEqual(graph.params.get(name), values, name);
  });

  // One batch trained on 200 times is memorised, which amplifies rounding: at the miniature's rate 1e-3 the
  // autoencoder's curves part by 1e-7 until step 50 and 7e-3 by step 199; at 1e-4, 2e-4 by step 199.
  test(`${model}: XLA steps agree with eager within float rounding (step 0 within 1e-5, 200 steps at rate 1e-4 within 1e-3) and repeat exactly`, () => {
    const eager = run(model, 'eager', 200, 1e-4);
    const xla = run(model, 'xla', 200, 1e-4);
    assert.ok(
      maxRelative(xla.losses.slice(0, 1), eager.losses) < 1e-5,
      `step 0: ${xla.losses[0]} vs ${eager.losses[0]}`,
    );
    const drift = maxRelative(xla.losses, eager.losses);
    assert.ok(drift < 1e-3, `losses over 200 steps differ by up to ${drift} (relative)`);
    assert.notDeepEqual(
      xla.losses,
      eager.losses,
      'XLA rounds otherwise: identical curves mean it did not run',
    );
    assert.deepEqual(run(model, 'xla', 200, 1e-4).losses, xla.losses);
  });
}

test('an XLA-compiled stage resumed from its checkpoint continues bit-identically', async () => {
  const dir = await mkdtemp(join(os.tmpdir(), 'lea-compiled-'));
  const settings: TrainSettings = {
    lr: 1e-3,
    batchSize: 8,
    iterations: 30,
    warmup: 5,
    schedule: 'linear',
    clip: 1,
    weightDecay: 0.01,
    betas: [0.9, 0.95],
    eps: 1e-8,
    decayParams: 'all',
    checkpointEvery: 10,
  };
  const trained = async (store: LocalCheckpointStore, until?: number): Promise<Float32Array> => {
    const s = (MODELS['fmri-ae'] as (seed: number) => ModelStep)(3);
    try {
      const task = { ...s.task, examples: BATCH };
      const r = await train(task, settings, {
        seed: 1,
        store,
        resume: true,
        compile: 'xla',
        ...(until ? { until } : {}),
      });
      assert.equal(r.compile, 'xla');
      return Float32Array.from([...r.earlierLosses, ...r.losses]);
    } finally {
      s.dispose();
    }
  };
  try {
    const whole = await trained(new LocalCheckpointStore(join(dir, 'whole')));
    const parts = new LocalCheckpointStore(join(dir, 'parts'));
    await trained(parts, 10);
    const resumed = await trained(parts);
    assert.deepEqual(resumed, whole);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a value uploaded inside the function that differs between calls is refused, naming the op', () => {
  const x = tf.tensor1d([1, 2, 3]);
  let calls = 0;
  // the scale comes from JS and changes per call: it belongs among the inputs
  const scaled = (inputs: tf.Tensor[]) => [tf.mul(inputs[0] as tf.Tensor, tf.scalar(++calls))];
  assert.throws(
    () => compileFunction(scaled, [[x], [x]], { mode: 'graph', label: 'scaled' }),
    /scaled: op 0 \(Mul\) reads a value uploaded inside the step that differs between two calls/,
  );
  x.dispose();
});

test('a function that reads a computed value back to JavaScript is refused, naming the op', () => {
  const x = tf.tensor1d([1, 2, 3]);
  const reads = (inputs: tf.Tensor[]) => {
    const total = tf.sum(inputs[0] as tf.Tensor);
    return [tf.mul(inputs[0] as tf.Tensor, total.dataSync()[0] as number)];
  };
  assert.throws(
    () => compileFunction(reads, [[x]], { mode: 'graph', label: 'reads' }),
    /reads: the step reads op \d+ \(Sum\)'s value back to JavaScript/,
  );
  x.dispose();
});

test('MaskGIT inference logits run as one compiled function per batch size, equal to the eager forward bit for bit', () => {
  const cfg = { ...smoke.models.maskgit, codes: 32, length: 16, featureDim: 32 };
  const mg = new MaskGit(cfg, new Rng(4));
  const rng = new Rng(5);
  const draw = (batch: number) => ({
    ids: Int32Array.from({ length: batch * cfg.length }, () =>
      rng.uniform() < 0.5 ? mg.maskId : rng.integer(0, cfg.codes),
    ),
    features: rng.fillNormal(new Float32Array(batch * cfg.featureDim)),
  });
  // the eager forward: the model's own hidden states and head, op by op
  const eager = (ids: Int32Array, features: Float32Array, batch: number) =>
    tidyValues(() => {
      const h = mg.hidden(tf.tensor1d(ids, 'int32'), tf.tensor2d(features, [batch, cfg.featureDim]));
      const rows = tf.slice(
        tf.reshape(h, [batch, cfg.length + 1, cfg.width]),
        [0, 1, 0],
        [batch, cfg.length, cfg.width],
      );
      return mg.head(tf.reshape(rows, [batch * cfg.length, cfg.width]) as tf.Tensor2D);
    });
  for (const batch of [6, 6, 3]) {
    const { ids, features } = draw(batch);
    const before = tf.memory().numTensors;
    assert.deepEqual(mg.logits(ids, features, batch), eager(ids, features, batch), `batch ${batch}`);
    assert.equal(tf.memory().numTensors, before, 'tensors left behind');
  }
  const { ids, features } = draw(6);
  assert.equal(
    countDispatches(() => mg.logits(ids, features, 6)).total,
    1,
    'a compiled pass is one dispatch',
  );
  mg.dispose();
});

test('a compiled function is one call: the same outputs as the eager ops, with the kernels dispatched once', () => {
  const w = tf.tensor2d(new Rng(1).fillNormal(new Float32Array(16 * 8)), [16, 8]);
  const x = tf.tensor2d(new Rng(2).fillNormal(new Float32Array(4 * 16)), [4, 16]);
  const f = (inputs: tf.Tensor[]) => {
    const [a, b] = inputs as [tf.Tensor2D, tf.Tensor2D];
    return [tf.tanh(tf.matMul(b, a)), tf.sum(tf.square(a))];
  };
  const fn = compileFunction(f, [[w, x]], { mode: 'graph', label: 'small' });
  const eager = [0, 1].map((i) => tidyValues(() => f([w, x])[i] as tf.Tensor));
  const out = fn.call([w, x]);
  assert.equal(fn.tracedOps, 4);
  out.forEach((t, i) => assert.deepEqual(t.dataSync(), eager[i]));
  tf.dispose([...out, w, x]);
});
