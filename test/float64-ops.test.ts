/**
 * The float64 TensorFlow functions ridge runs on the native backend (lib/alignment/float64-ops.ts): values travel
 * bit for bit, and on integer-valued inputs whose products need more than float32's 24 bits the results equal a
 * float64 JS reference exactly, which no float32 arithmetic gives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  centre64,
  gram64,
  matMul64,
  normalEquations64,
  spdSolve64,
  take,
  upload64,
} from '../lib/alignment/float64-ops.js';
import { mat, type Mat } from '../lib/alignment/matrix.js';
import { initCompute } from '../lib/compute/backend.js';
import { compiledModeFor } from '../lib/compute/tf-function.js';
import { Rng } from '../lib/compute/rng.js';
import { BadInputError } from '../lib/errors.js';

await initCompute();
const skip = compiledModeFor('graph').reason ?? false;

/**
 * Integers in (-2^25, 2^25), beyond float32's 24 bits: a product has at most 50 bits, so a sum of up to 8 is exact
 * in float64 in any order.
 */
function integers(rng: Rng, rows: number, cols: number): Mat {
  return mat(
    rows,
    cols,
    Float64Array.from({ length: rows * cols }, () => Math.round((rng.uniform() * 2 - 1) * 2 ** 25)),
  );
}

function product(a: Mat, b: Mat, transposeA = false): Mat {
  const [m, k] = transposeA ? [a.cols, a.rows] : [a.rows, a.cols];
  const out = mat(m, b.cols);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < b.cols; j++) {
      let s = 0;
      for (let q = 0; q < k; q++)
        s += (transposeA ? a.data[q * a.cols + i]! : a.data[i * a.cols + q]!) * b.data[q * b.cols + j]!;
      out.data[i * b.cols + j] = s;
    }
  return out;
}

function transpose(a: Mat): Mat {
  const out = mat(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.cols; j++) out.data[j * a.rows + i] = a.data[i * a.cols + j]!;
  return out;
}

describe('float64 TensorFlow functions', { skip }, () => {
  const rng = new Rng(7, 'float64-ops');

  it('moves float64 values bit for bit', async () => {
    const values = Float64Array.of(0.1, -0, 5e-324, 1 + 2 ** -52, -1e300, Math.PI, 2 ** 60 + 2 ** 8, 1 / 3);
    const back = await take(upload64(mat(2, 4, values)));
    assert.deepEqual(new Uint8Array(back.data.buffer), new Uint8Array(values.buffer));
  });

  it('multiplies exactly where float32 cannot: products with or without transposes', async () => {
    const a = integers(rng, 3, 4);
    const b = integers(rng, 4, 5);
    const [ta, tb] = [upload64(a), upload64(b)];
    assert.deepEqual((await take(matMul64(ta, tb))).data, product(a, b).data);
    const at = upload64(transpose(a));
    const bt = upload64(transpose(b));
    assert.deepEqual((await take(matMul64(at, tb, true))).data, product(a, b).data);
    assert.deepEqual((await take(matMul64(ta, bt, false, true))).data, product(a, b).data);
    await assert.rejects(async () => matMul64(ta, ta), /do not align/);
    tf.dispose([ta.bits, tb.bits, at.bits, bt.bits]);
  });

  it('forms the normal equations (the Gram in blocks, lower triangle) and the dual kernel exactly', async () => {
    // 600 columns: three Gram panels, the last narrower
    const x = integers(rng, 3, 600);
    const y = integers(rng, 3, 2);
    const xs = upload64(x);
    const ys = upload64(y);
    const { gram, cross } = normalEquations64(xs, ys);
    const g = await take(gram);
    const ref = product(x, x, true);
    for (let i = 0; i < 600; i++)
      for (let j = 0; j <= i; j++)
        assert.equal(g.data[i * 600 + j], ref.data[i * 600 + j], `gram (${i}, ${j})`);
    assert.deepEqual((await take(cross)).data, product(x, y, true).data);
    const k = integers(rng, 3, 8);
    const ks = upload64(k);
    assert.deepEqual((await take(gram64(ks))).data, product(k, transpose(k)).data);
    tf.dispose([xs.bits, ys.bits, ks.bits]);
  });

  it('centres columns and solves an SPD system, refusing one that is not positive definite', async () => {
    const m = mat(2, 3, Float64Array.of(1, 2, 3, 5, 10, 20));
    const { centred, mean } = await centre64(upload64(m));
    assert.deepEqual(Array.from(mean), [3, 6, 11.5]);
    assert.deepEqual(Array.from((await take(centred)).data), [-2, -4, -8.5, 2, 4, 8.5]);
    // (A + 1·I)·W = B with W known: A + I = [[4, 2], [2, 3]], W = [[1, -2], [3, 0.5]]
    const a = upload64(mat(2, 2, Float64Array.of(3, 2, 2, 2)));
    const b = upload64(mat(2, 2, Float64Array.of(10, -7, 11, -2.5)));
    const w = await take(await spdSolve64(a, b, 1));
    assert.ok(
      w.data.every((v, i) => Math.abs(v - [1, -2, 3, 0.5][i]!) < 1e-15),
      `${w.data}`,
    );
    await assert.rejects(spdSolve64(a, b, -3), BadInputError);
  });
});
