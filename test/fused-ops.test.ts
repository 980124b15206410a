/**
 * lib/models/fused: every fused op against its plain twin (OP_SETS), one table. Each case draws its inputs,
 * runs both, and compares the value and the gradient of every input tensor (parameters and the op's input) of
 * the same scalar, Σ y·R with R a fixed random projection, so every output entry carries a distinct gradient.
 * The plain twins are the modules as PyTorch runs them (timm's Block, nn.LayerNorm); the whole models' step-0
 * losses against PyTorch are in test/step0-loss.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { OP_SETS, type OpSet } from '../lib/models/fused/index.js';

before(async () => {
  await initCompute();
});

type Inputs = Record<string, tf.Variable>;

interface Case {
  /** Which OpSet entry the case exercises. */
  op: keyof OpSet;
  /** Draws the inputs: parameters at O(1) scale (at init scale attention is uniform and gradients tiny). */
  inputs(rng: Rng): Inputs;
  /** Applies one set's op to the inputs. */
  apply(ops: OpSet, v: Inputs): tf.Tensor;
}

const draw = (rng: Rng, shape: number[], mean = 0, std = 1): tf.Variable =>
  tf.variable(
    tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), mean, std), shape),
  );

/** Linear (weight [in, out], std 1/√in) or norm (weight ≈ 1) parameters under `name`. */
function layer(rng: Rng, v: Inputs, name: string, shape: number[]): void {
  const norm = shape.length === 1;
  v[`${name}.weight`] = draw(rng, shape, norm ? 1 : 0, norm ? 0.3 : 1 / Math.sqrt(shape[0] as number));
  v[`${name}.bias`] = draw(rng, [shape.at(-1) as number], 0, 0.3);
}
const wb = (v: Inputs, name: string) => ({ weight: v[`${name}.weight`]!, bias: v[`${name}.bias`]! });

function blockCase(batch: number, t: number, d: number, f: number, heads: number): Case {
  return {
    op: 'preLnBlock',
    inputs(rng) {
      const v: Inputs = { x: draw(rng, [batch * t, d]) };
      for (const [name, shape] of [
        ['norm1', [d]],
        ['attn.qkv', [d, 3 * d]],
        ['attn.proj', [d, d]],
        ['norm2', [d]],
        ['mlp.fc1', [d, f]],
        ['mlp.fc2', [f, d]],
      ] as const)
        layer(rng, v, name, [...shape]);
      return v;
    },
    apply: (ops, v) =>
      ops.preLnBlock(
        v.x as tf.Variable<tf.Rank.R2>,
        {
          norm1: wb(v, 'norm1'),
          attn: { qkv: wb(v, 'attn.qkv'), proj: wb(v, 'attn.proj') },
          norm2: wb(v, 'norm2'),
          mlp: { fc1: wb(v, 'mlp.fc1'), fc2: wb(v, 'mlp.fc2') },
        },
        { batch, heads, eps: 1e-5 },
      ),
  };
}

/** name → case; the wide block takes the backward pieces' paper-size paths (explicit transpose, einsum sums). */
const CASES: Record<string, Case> = {
  'pre-LN block': blockCase(3, 5, 32, 48, 4),
  'pre-LN block, wide': blockCase(4, 32, 512, 512, 8),
  'layer norm': {
    op: 'layerNorm',
    inputs(rng) {
      const v: Inputs = { x: draw(rng, [15, 32], 0.5, 2) };
      layer(rng, v, 'norm', [32]);
      return v;
    },
    apply: (ops, v) => ops.layerNorm(v.x as tf.Variable<tf.Rank.R2>, wb(v, 'norm'), 1e-5),
  },
};

function maxRelError(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(
    () => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / (tf.max(tf.abs(b)).dataSync()[0]! + 1e-30),
  );
}

test('the table covers every op of the set, and the two sets name the same ops', () => {
  assert.deepEqual(Object.keys(OP_SETS.fused).sort(), Object.keys(OP_SETS.plain).sort());
  assert.deepEqual(
    [...new Set(Object.values(CASES).map((c) => c.op))].sort(),
    Object.keys(OP_SETS.fused).sort(),
  );
});

for (const [name, c] of Object.entries(CASES)) {
  test(`${name}: fused value and every gradient equal the plain twin's (1e-4 relative)`, () => {
    const rng = new Rng(7, name);
    const v = c.inputs(rng);
    const shape = c.apply(OP_SETS.plain, v).shape;
    const proj = tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))), shape);
    const inputs = Object.entries(v);
    const run = (ops: OpSet) => {
      const value = tf.tidy(() => c.apply(ops, v));
      const { grads } = tf.variableGrads(
        () => tf.sum(tf.mul(c.apply(ops, v), proj)) as tf.Scalar,
        inputs.map(([, t]) => t),
      );
      return { value, grads };
    };
    const fused = run(OP_SETS.fused);
    const plain = run(OP_SETS.plain);
    assert.deepEqual(fused.value.shape, plain.value.shape);
    const err = maxRelError(fused.value, plain.value);
    assert.ok(err < 1e-5, `value: relative error ${err}`);
    for (const [n, t] of inputs) {
      const g = fused.grads[t.name];
      assert.ok(g, `${n}: no gradient from the fused op`);
      const e = maxRelError(g, plain.grads[t.name] as tf.Tensor);
      assert.ok(e < 1e-4, `${n}: gradient relative error ${e}`);
    }
    tf.dispose([
      proj,
      fused.value,
      plain.value,
      ...Object.values(fused.grads),
      ...Object.values(plain.grads),
    ]);
    tf.dispose(Object.values(v));
  });
}
