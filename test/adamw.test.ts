/**
 * lib/train/adamw.ts's multi-tensor update against the single-tensor form it replaced, applied to each parameter
 * on its own with the same float32 operations: bit-identical without clipping (clipping sums ‖g‖² per group, so
 * there it may differ in rounding), and a state exported in name order resumes bit-identically.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../lib/compute/rng.js';
import type { Params } from '../lib/models/transformer.js';
import { AdamW, type AdamWConfig } from '../lib/train/adamw.js';

// Shapes that exercise every grouping: six matrices of one trailing shape (a group of their own), a lone matrix
// and a lone 3-D tensor (flattened into the vectors), vectors, a scalar.
const SHAPES: [string, number[]][] = [
  ['a.weight', [3, 5]],
  ['a.bias', [5]],
  ['b.weight', [4, 5]],
  ['b.bias', [5]],
  ['c.weight', [5, 2]],
  ['conv', [3, 1, 4]],
  ['scale', []],
  ['d.weight', [6, 5]],
  ...[1, 2, 3].map((rows): [string, number[]] => [`e${rows}.weight`, [rows, 5]]),
];

function makeParams(seed: number): Params {
  const rng = new Rng(seed, 'adamw-test');
  return new Map(
    SHAPES.map(([name, shape]) => {
      const size = shape.reduce((a, b) => a * b, 1);
      return [name, tf.variable(tf.tensor(rng.fillNormal(new Float32Array(size)), shape))];
    }),
  );
}

function makeGrads(rng: Rng): Map<string, tf.Tensor> {
  return new Map(
    SHAPES.map(([name, shape]) => {
      const size = shape.reduce((a, b) => a * b, 1);
      return [name, tf.tensor(rng.fillNormal(new Float32Array(size)), shape)];
    }),
  );
}

/** The single-tensor update, op for op as the flat-vector optimizer computed it before groups (no clipping). */
function referenceStep(
  params: Params,
  grads: Map<string, tf.Tensor>,
  moments: Map<string, [tf.Tensor, tf.Tensor]>,
  cfg: AdamWConfig,
  t: number,
): void {
  const [beta1, beta2] = cfg.betas;
  const bc1 = 1 - beta1 ** t;
  const bc2 = 1 - beta2 ** t;
  const stepSize = (cfg.lr * Math.sqrt(bc2)) / bc1;
  const lrWd = cfg.lr * cfg.weightDecay;
  for (const [name, p] of params) {
    const g = grads.get(name) as tf.Tensor;
    const [m0, v0] = moments.get(name) ?? [tf.zerosLike(p), tf.zerosLike(p)];
    const m = tf.add(tf.mul(m0, beta1), tf.mul(g, tf.scalar(1 - beta1)));
    const v = tf.add(tf.mul(v0, beta2), tf.mul(tf.square(g), tf.scalar(1 - beta2)));
    tf.dispose([m0, v0]);
    moments.set(name, [m, v]);
    const delta = tf.tidy(() => tf.div(tf.mul(m, stepSize), tf.add(tf.sqrt(v), cfg.eps * Math.sqrt(bc2))));
    const decays = cfg.decays?.(name) ?? true;
    const masked = SHAPES.some(([n]) => !(cfg.decays?.(n) ?? true));
    tf.tidy(() => {
      let x: tf.Tensor = p;
      if (lrWd !== 0 && masked) x = tf.mul(x, tf.sub(1, tf.mul(tf.scalar(decays ? 1 : 0), lrWd)));
      else if (lrWd !== 0) x = tf.mul(x, 1 - lrWd);
      p.assign(tf.sub(x, delta));
    });
    delta.dispose();
  }
}

const bits = (p: Params): Map<string, number[]> =>
  new Map([...p].map(([n, x]) => [n, [...new Uint32Array(new Float32Array(x.dataSync()).buffer)]]));

for (const decays of [undefined, (n: string) => n.endsWith('weight')]) {
  test(`the multi-tensor update is bit-identical to the single-tensor one (${decays ? 'matrices decay' : 'all decay'})`, () => {
    const cfg: AdamWConfig = {
      lr: 1e-2,
      betas: [0.9, 0.95],
      eps: 1e-8,
      // lr·wd where 1 − lr·wd rounds differently in float32 and float64 arithmetic (the masked form's)
      weightDecay: 0.1026541,
      ...(decays ? { decays } : {}),
    };
    const ours = makeParams(1);
    const ref = makeParams(1);
    const opt = new AdamW(ours, cfg);
    const moments = new Map<string, [tf.Tensor, tf.Tensor]>();
    const rng = new Rng(2, 'adamw-grads');
    for (let t = 1; t <= 3; t++) {
      const grads = makeGrads(rng);
      opt.update(grads);
      referenceStep(ref, grads, moments, cfg, t);
      tf.dispose([...grads.values()]);
    }
    assert.deepEqual(bits(ours), bits(ref));
    // the exported moments are the reference's, in name order
    const state = opt.exportState();
    const flat = (k: 0 | 1) =>
      new Float32Array([...moments.values()].flatMap(([m, v]) => [...(k ? v : m).dataSync()]));
    assert.deepEqual(state.m, flat(0));
    assert.deepEqual(state.v, flat(1));
    opt.dispose();
    tf.dispose([...ours.values(), ...ref.values(), ...[...moments.values()].flat()]);
  });
}

test('a state exported in name order resumes bit-identically, clipping included', () => {
  const cfg: AdamWConfig = { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1, maxGradNorm: 0.5 };
  const rng = new Rng(3, 'adamw-grads');
  const steps = [makeGrads(rng), makeGrads(rng), makeGrads(rng)];
  const straight = makeParams(4);
  const a = new AdamW(straight, cfg);
  steps.forEach((g) => a.update(g));
  const resumed = makeParams(4);
  const b = new AdamW(resumed, cfg);
  b.update(steps[0] as Map<string, tf.Tensor>);
  const state = b.exportState();
  b.dispose();
  const c = new AdamW(resumed, cfg);
  c.importState(state);
  assert.equal(c.step, 1);
  // inside a tidy, as lib/train/loop.ts runs it: the norm must outlive it
  steps.slice(1).forEach((g) => tf.tidy(() => c.update(g)));
  assert.deepEqual(bits(resumed), bits(straight));
  assert.ok(Math.abs(a.lastGradNorm() - c.lastGradNorm()) === 0);
  for (const x of [a, c]) x.dispose();
  tf.dispose([...straight.values(), ...resumed.values(), ...steps.flatMap((g) => [...g.values()])]);
});
