/**
 * lib/models/transformer.ts and lib/train/adamw.ts: the fused blocks' hand-written gradients against tfjs
 * autodiff of a plain op-by-op encoder, and one AdamW step against the update rule computed in float64.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { encoderForward, initEncoder, type EncoderConfig, type Params } from '../lib/models/transformer.js';
import { AdamW, lossAndGrads } from '../lib/train/adamw.js';

before(async () => {
  await initCompute();
});

const cfg: EncoderConfig = { depth: 2, width: 32, heads: 4, mlpRatio: 1.5, eps: 1e-5 };
const [B, T] = [3, 5];

/** The same encoder written op by op, differentiated by tfjs itself. */
function plainEncoder(cfg: EncoderConfig, p: Params, x: tf.Tensor3D): tf.Tensor {
  const [B, T] = x.shape;
  const [d, h] = [cfg.width, cfg.heads];
  const hd = d / h;
  const ln = (v: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const { mean, variance } = tf.moments(v, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(v, mean), tf.sqrt(tf.add(variance, cfg.eps))), g), b);
  };
  const lin = (v: tf.Tensor, name: string) =>
    tf.add(
      tf.matMul(tf.reshape(v, [-1, v.shape[2] as number]), p.get(`${name}.weight`) as tf.Tensor2D),
      p.get(`${name}.bias`) as tf.Tensor,
    );
  let y: tf.Tensor = x;
  for (let i = 0; i < cfg.depth; i++) {
    const pre = `blocks.${i}.`;
    const a = ln(y, p.get(`${pre}norm1.weight`) as tf.Tensor, p.get(`${pre}norm1.bias`) as tf.Tensor);
    const qkv = tf.transpose(tf.reshape(lin(a, `${pre}attn.qkv`), [B, T, 3, h, hd]), [2, 0, 3, 1, 4]);
    const [q, k, v] = tf.unstack(qkv) as tf.Tensor4D[];
    const att = tf.softmax(tf.div(tf.matMul(q as tf.Tensor4D, k as tf.Tensor4D, false, true), Math.sqrt(hd)));
    const o = tf.reshape(tf.transpose(tf.matMul(att, v as tf.Tensor4D), [0, 2, 1, 3]), [B, T, d]);
    y = tf.add(y, tf.reshape(lin(o, `${pre}attn.proj`), [B, T, d]));
    const m = ln(y, p.get(`${pre}norm2.weight`) as tf.Tensor, p.get(`${pre}norm2.bias`) as tf.Tensor);
    const u = lin(m, `${pre}mlp.fc1`);
    const gelu = tf.mul(tf.mul(u, 0.5), tf.add(1, tf.erf(tf.div(u, Math.SQRT2))));
    y = tf.add(y, tf.reshape(lin(tf.reshape(gelu, [B, T, -1]), `${pre}mlp.fc2`), [B, T, d]));
  }
  return ln(y, p.get('norm.weight') as tf.Tensor, p.get('norm.bias') as tf.Tensor);
}

function maxRelError(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(
    () => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / (tf.max(tf.abs(b)).dataSync()[0]! + 1e-30),
  );
}

/** Forward value and every gradient (parameters and input) of encoderForward against the plain encoder. */
function checkAgainstAutodiff(
  cfg: EncoderConfig,
  params: Params,
  prefix: string,
  rng: Rng,
  [B, T]: number[],
) {
  // move the layer norms and biases off their 1/0 init so that their gradients are exercised
  for (const [n, v] of params) {
    if (v.rank === 1)
      v.assign(tf.tensor(rng.fillNormal(new Float32Array(v.size), n.endsWith('weight') ? 1 : 0, 0.3)));
  }
  const plain: Params = new Map([...params].map(([n, v]) => [n.slice(prefix.length), v]));
  const shape: [number, number, number] = [B as number, T as number, cfg.width];
  const x = tf.tensor3d(rng.fillNormal(new Float32Array(shape[0] * shape[1] * cfg.width)), shape);
  const target = tf.tensor3d(rng.fillNormal(new Float32Array(shape[0] * shape[1] * cfg.width)), shape);
  const mse = (y: tf.Tensor) => tf.mean(tf.square(tf.sub(y, target))) as tf.Scalar;

  const ours = lossAndGrads(params, () => mse(encoderForward(params, cfg, x, prefix)));
  const ref = lossAndGrads(params, () => mse(plainEncoder(cfg, plain, x)));
  assert.ok(Math.abs(ours.loss.dataSync()[0]! - ref.loss.dataSync()[0]!) < 1e-5);
  for (const n of params.keys()) {
    const err = maxRelError(ours.grads.get(n) as tf.Tensor, ref.grads.get(n) as tf.Tensor);
    assert.ok(err < 1e-4, `${n}: relative error ${err}`);
  }
  const dxOurs = tf.grad((v: tf.Tensor) => mse(encoderForward(params, cfg, v as tf.Tensor3D, prefix)))(x);
  const dxRef = tf.grad((v: tf.Tensor) => mse(plainEncoder(cfg, plain, v as tf.Tensor3D)))(x);
  assert.ok(maxRelError(dxOurs, dxRef) < 1e-4);
  tf.dispose([x, target, ours.loss, ...ours.grads.values(), ref.loss, ...ref.grads.values(), dxOurs, dxRef]);
}

test('encoder names and shapes follow timm; forward and all gradients match autodiff of the plain encoder', () => {
  const rng = new Rng(3);
  const params = initEncoder(cfg, rng, 'enc.');
  assert.equal(params.size, 12 * cfg.depth + 2);
  assert.deepEqual(params.get('enc.blocks.1.attn.qkv.weight')?.shape, [32, 96]);
  assert.deepEqual(params.get('enc.blocks.0.mlp.fc1.weight')?.shape, [32, 48]);
  assert.deepEqual(params.get('enc.norm.bias')?.shape, [32]);
  checkAgainstAutodiff(cfg, params, 'enc.', rng, [B, T]);
});

test('gradients also match at sizes that take the explicit-transpose and matmul column-sum paths', () => {
  const wide: EncoderConfig = { depth: 1, width: 512, heads: 8, mlpRatio: 1, eps: 1e-5 };
  const rng = new Rng(8);
  const params = initEncoder(wide, rng);
  checkAgainstAutodiff(wide, params, '', rng, [4, 32]);
  tf.dispose([...params.values()]);
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
