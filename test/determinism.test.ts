/**
 * Seeded training is bit-reproducible on the native backend (same seed, backend and thread count), and a
 * run resumed from a checkpoint (weights, AdamW state, RNG state) continues exactly as if uninterrupted.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { Rng, type RngState } from '../lib/compute/rng.js';
import { encoderForward, initEncoder, type EncoderConfig, type Params } from '../lib/models/transformer.js';
import { AdamW, lossAndGrads, type AdamWConfig, type AdamWState } from '../lib/train/adamw.js';

const cfg: EncoderConfig = { depth: 2, width: 32, heads: 4, mlpRatio: 1, eps: 1e-5 };
const optCfg: AdamWConfig = {
  lr: 1e-3,
  betas: [0.9, 0.95],
  eps: 1e-8,
  weightDecay: 0.01,
  maxGradNorm: 0.1, // small enough that clipping is active
  decays: (name) => name.endsWith('.weight') && !name.includes('norm'),
};
const [batch, tokens] = [4, 8];

interface Run {
  params: Params;
  opt: AdamW;
  data: Rng;
}

interface Checkpoint {
  weights: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  opt: AdamWState;
  data: RngState;
}

function start(seed: number): Run {
  const params = initEncoder(cfg, new Rng(seed, 'init'));
  return { params, opt: new AdamW(params, optCfg), data: new Rng(seed, 'data') };
}

/** Trains `n` steps on fresh random batches drawn from the run's data stream; returns the last loss. */
function train(run: Run, n: number): number {
  let last = NaN;
  for (let i = 0; i < n; i++) {
    const size = batch * tokens * cfg.width;
    const x = tf.tensor3d(run.data.fillNormal(new Float32Array(size)), [batch, tokens, cfg.width]);
    const y = tf.tensor3d(run.data.fillNormal(new Float32Array(size)), [batch, tokens, cfg.width]);
    last = tf.tidy(() => {
      const { loss, grads } = lossAndGrads(run.params, () =>
        tf.losses.meanSquaredError(y, encoderForward(run.params, cfg, x)),
      );
      run.opt.update(grads);
      return loss.dataSync()[0] as number;
    });
    tf.dispose([x, y]);
  }
  return last;
}

function snapshot(run: Run): Checkpoint {
  const weights = new Map([...run.params].map(([n, v]) => [n, (v.dataSync() as Float32Array).slice()]));
  const shapes = new Map([...run.params].map(([n, v]) => [n, v.shape]));
  return { weights, shapes, opt: run.opt.exportState(), data: run.data.getState() };
}

function restore(ck: Checkpoint): Run {
  const params: Params = new Map();
  for (const [n, values] of ck.weights) {
    params.set(n, tf.variable(tf.tensor(values, ck.shapes.get(n))));
  }
  const opt = new AdamW(params, optCfg);
  opt.importState(ck.opt);
  const data = new Rng(0);
  data.setState(ck.data);
  return { params, opt, data };
}

function dispose(run: Run): void {
  tf.dispose([...run.params.values()]);
  run.opt.dispose();
}

function assertBitIdentical(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [n, x] of a) {
    const y = b.get(n) as Float32Array;
    assert.ok(
      Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(
        Buffer.from(y.buffer, y.byteOffset, y.byteLength),
      ),
      n,
    );
  }
}

before(async () => {
  delete process.env.LEA_TF_BACKEND;
  assert.equal((await initCompute()).backend, 'tensorflow');
});

test('two seeded runs of 20 AdamW steps give bit-identical weights', () => {
  const a = start(666);
  const initial = snapshot(a).weights;
  const lossA = train(a, 20);
  const b = start(666);
  const lossB = train(b, 20);
  const [wa, wb] = [snapshot(a).weights, snapshot(b).weights];
  assertBitIdentical(wa, wb);
  assert.equal(lossA, lossB);
  assert.ok(Number.isFinite(lossA));
  const moved = [...wa].filter(([n, w]) => w.some((x, i) => x !== (initial.get(n) as Float32Array)[i]));
  assert.equal(moved.length, wa.size, 'every parameter was updated');
  const c = start(667);
  train(c, 1);
  assert.ok(
    !(snapshot(c).weights.get('blocks.0.attn.qkv.weight') as Float32Array).every(
      (x, i) => x === wa.get('blocks.0.attn.qkv.weight')?.[i],
    ),
  );
  [a, b, c].forEach(dispose);
});

test('resuming from a checkpoint at step 10 reproduces the uninterrupted 20-step run exactly', () => {
  const straight = start(7);
  train(straight, 20);
  const first = start(7);
  train(first, 10);
  const ck = snapshot(first);
  dispose(first);
  const resumed = restore(ck);
  assert.equal(resumed.opt.step, 10);
  train(resumed, 10);
  assertBitIdentical(snapshot(straight).weights, snapshot(resumed).weights);
  [straight, resumed].forEach(dispose);
});
