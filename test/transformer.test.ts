/**
 * lib/models/transformer.ts and lib/train/adamw.ts: the encoder's names and shapes and its wiring of the ops
 * (each fused op against its plain twin, gradients included, is test/fused-ops.test.ts), and one AdamW step
 * against the update rule computed in float64.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { OP_SETS } from '../lib/models/fused/index.js';
import { encoderForward, initEncoder, type EncoderConfig, type Params } from '../lib/models/transformer.js';
import { AdamW, lossAndGrads } from '../lib/train/adamw.js';

before(async () => {
  await initCompute();
});

const cfg: EncoderConfig = { depth: 2, width: 32, heads: 4, mlpRatio: 1.5, eps: 1e-5 };
const [B, T] = [3, 5];

test('encoder names and shapes follow timm; the fused and the plain ops give one encoder', () => {
  const rng = new Rng(3);
  const params = initEncoder(cfg, rng, 'enc.');
  assert.equal(params.size, 12 * cfg.depth + 2);
  assert.deepEqual(params.get('enc.blocks.1.attn.qkv.weight')?.shape, [32, 96]);
  assert.deepEqual(params.get('enc.blocks.0.mlp.fc1.weight')?.shape, [32, 48]);
  assert.deepEqual(params.get('enc.norm.bias')?.shape, [32]);
  const x = tf.tensor3d(rng.fillNormal(new Float32Array(B * T * cfg.width)), [B, T, cfg.width]);
  const [fused, plain] = [OP_SETS.fused, OP_SETS.plain].map((ops) =>
    encoderForward(params, cfg, x, 'enc.', ops),
  );
  assert.deepEqual(fused?.shape, [B, T, cfg.width]);
  const err = tf.max(tf.abs(tf.sub(fused as tf.Tensor, plain as tf.Tensor))).dataSync()[0] as number;
  assert.ok(err < 1e-5, `fused and plain encoders differ by ${err}`);
  tf.dispose([x, fused as tf.Tensor, plain as tf.Tensor, ...params.values()]);
});

test('one AdamW step equals the decoupled update rule with clipping, computed in float64', () => {
  const w0 = [0.5, -1.5, 2, 0.25];
  const b0 = [0.1, -0.2];
  const gw = [3, -4, 0, 12];
  const gb = [0.5, -0.5];
  const params: Params = new Map<string, tf.Variable>([
    ['w', tf.variable(tf.tensor2d(w0, [2, 2]))],
    ['b', tf.variable(tf.tensor1d(b0))],
  ]);
  const [lr, beta1, beta2, eps, wd, maxNorm] = [0.01, 0.9, 0.95, 1e-8, 0.1, 2];
  const opt = new AdamW(params, {
    lr,
    betas: [beta1, beta2],
    eps,
    weightDecay: wd,
    maxGradNorm: maxNorm,
    decays: (n) => n === 'w',
  });
  const expected = (
    p: number[],
    g: number[],
    decays: boolean,
    scale: number,
    step: number,
    m: number[],
    v: number[],
  ) =>
    p.map((x, i) => {
      const gi = (g[i] as number) * scale;
      m[i] = beta1 * (m[i] as number) + (1 - beta1) * gi;
      v[i] = beta2 * (v[i] as number) + (1 - beta2) * gi * gi;
      const mh = (m[i] as number) / (1 - beta1 ** step);
      const vh = (v[i] as number) / (1 - beta2 ** step);
      return x * (decays ? 1 - lr * wd : 1) - (lr * mh) / (Math.sqrt(vh) + eps);
    });
  const norm = Math.hypot(...gw, ...gb);
  const scale = Math.min(1, maxNorm / (norm + 1e-6));
  const [mw, vw, mb, vb] = [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0],
    [0, 0],
  ];
  let [ew, eb] = [w0, b0];
  for (let step = 1; step <= 2; step++) {
    opt.update(
      new Map<string, tf.Tensor>([
        ['w', tf.tensor2d(gw, [2, 2])],
        ['b', tf.tensor1d(gb)],
      ]),
    );
    ew = expected(ew, gw, true, scale, step, mw, vw);
    eb = expected(eb, gb, false, scale, step, mb, vb);
  }
  const close = (got: ArrayLike<number>, want: number[]) =>
    want.forEach((x, i) => assert.ok(Math.abs((got[i] as number) - x) < 1e-6, `${got[i]} vs ${x}`));
  close(params.get('w')!.dataSync(), ew);
  close(params.get('b')!.dataSync(), eb);
  const state = opt.exportState();
  assert.equal(state.step, 2);
  assert.deepEqual(state.names, ['w', 'b']);
  close(state.m, [...mw, ...mb]);
  assert.throws(
    () =>
      new AdamW(new Map([['b', params.get('b')!]]), {
        lr,
        betas: [beta1, beta2],
        eps,
        weightDecay: 0,
      }).importState(state),
    /does not match/,
  );
});

test('a training step leaves no tensors behind', () => {
  const params = initEncoder(cfg, new Rng(4));
  const opt = new AdamW(params, {
    lr: 1e-3,
    betas: [0.9, 0.95],
    eps: 1e-8,
    weightDecay: 0.1,
    maxGradNorm: 1,
  });
  const x = tf.tensor3d(new Rng(5).fillNormal(new Float32Array(B * T * cfg.width)), [B, T, cfg.width]);
  const step = () => {
    const { loss, grads } = lossAndGrads(
      params,
      () => tf.mean(tf.square(encoderForward(params, cfg, x))) as tf.Scalar,
    );
    opt.update(grads);
    tf.dispose([loss, ...grads.values()]);
  };
  step(); // creates the cached scalar constants
  const before = tf.memory().numTensors;
  step();
  step();
  assert.equal(tf.memory().numTensors, before);
});
