/**
 * Ridge alignment against scikit-learn: coef, intercept and predictions of sklearn.linear_model.Ridge
 * (primal and dual shapes, with and without intercept), alpha selection against GridSearchCV, and the
 * transductive re-normalisation against its NumPy formula. Agreement is max|ours − sklearn| / max|sklearn|.
 * Both arithmetics are checked: TensorFlow's float64 kernels (the native backend's) to 1e-10, and the float32
 * split the other backends use to 1e-6, run here on purpose.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { matFromNdArray, mat, type Mat } from '../lib/alignment/matrix.js';
import {
  fitDecodingMap,
  fitEncodingMap,
  fitRidge,
  predictRidge,
  renormalise,
  ridgeArithmetic,
  selectAlpha,
  type RidgeArithmetic,
} from '../lib/alignment/ridge.js';
import { encodeFeatures } from '../lib/alignment/encode.js';
import { initCompute } from '../lib/compute/backend.js';
import { BadInputError } from '../lib/errors.js';
import { ndarray } from '../lib/tensors/ndarray.js';
import { readNpy } from '../lib/tensors/npy.js';
import { runOracle } from './helpers/oracle.js';
import { maxRelError } from './helpers/compare.js';

const TOL = 1e-10;
/** Each arithmetic's agreement with scikit-learn; the float32 split's products are accurate to about 1e-7. */
const ARITHMETICS: { arithmetic: RidgeArithmetic; tol: number }[] = [
  { arithmetic: 'float64', tol: TOL },
  { arithmetic: 'float32-split', tol: 1e-6 },
];

interface Case {
  name: string;
  n: number;
  p: number;
  t: number;
  alpha: number;
  fitIntercept: boolean;
}

// samples > features (primal), samples < features (dual), square, inner dimensions past the exact-product
// chunk (1024) and systems past the recursive solver's base block (128); the last is the paper's shape.
const CASES: Case[] = [
  { name: 'primal', n: 200, p: 50, t: 3, alpha: 1, fitIntercept: false },
  { name: 'primal-intercept', n: 200, p: 50, t: 3, alpha: 10, fitIntercept: true },
  { name: 'dual', n: 40, p: 120, t: 5, alpha: 2, fitIntercept: false },
  { name: 'dual-intercept', n: 40, p: 120, t: 5, alpha: 0.5, fitIntercept: true },
  { name: 'square', n: 300, p: 300, t: 10, alpha: 500, fitIntercept: true },
  { name: 'single-target', n: 100, p: 20, t: 1, alpha: 3, fitIntercept: true },
  { name: 'long-primal', n: 1500, p: 300, t: 20, alpha: 500, fitIntercept: false },
  { name: 'wide-dual', n: 200, p: 600, t: 4, alpha: 1, fitIntercept: true },
  { name: 'paper-encoding', n: 1200, p: 1024, t: 1024, alpha: 500, fitIntercept: true },
  // without centring, the offsets make this the worst-conditioned case (condition number ≈ 7e3)
  { name: 'paper-decoding', n: 1200, p: 1024, t: 1024, alpha: 500, fitIntercept: false },
];

const ORACLE = `
import json, sys, numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
out = sys.argv[1]
cases = json.loads(sys.argv[2])
rng = np.random.default_rng(20240611)
for c in cases:
    n, p, t = c['n'], c['p'], c['t']
    # correlated, offset, unevenly scaled features; targets linear in them plus noise
    X = rng.standard_normal((n, p)) @ (np.eye(p) + 0.3 * rng.standard_normal((p, p)) / np.sqrt(p))
    X = X * rng.uniform(0.2, 5.0, p) + rng.uniform(-3, 3, p)
    W = rng.standard_normal((p, t))
    Y = X @ W / np.sqrt(p) + rng.uniform(-2, 2, t) + 0.5 * rng.standard_normal((n, t))
    X2 = rng.standard_normal((7, p)) * 2 + 1
    m = Ridge(alpha=c['alpha'], fit_intercept=c['fitIntercept']).fit(X, Y)
    for k, v in dict(X=X, Y=Y, X2=X2, coef=m.coef_.T, intercept=np.atleast_1d(m.intercept_) * np.ones(t), pred=m.predict(X2)).items():
        np.save(f"{out}/{c['name']}-{k}.npy", v)
# alpha selection: 5-fold GridSearchCV on a primal and a dual problem
alphas = [0.1, 1.0, 10.0, 100.0]
res = {}
for name, n, p, fi in [('cv-primal', 120, 10, True), ('cv-dual', 30, 40, False)]:
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, 3)) + 3.0 * rng.standard_normal((n, 3))
    g = GridSearchCV(Ridge(fit_intercept=fi), {'alpha': alphas}, cv=KFold(5)).fit(X, Y)
    np.save(f"{out}/{name}-X.npy", X); np.save(f"{out}/{name}-Y.npy", Y)
    res[name] = dict(alpha=g.best_params_['alpha'], scores=g.cv_results_['mean_test_score'].tolist(), fitIntercept=fi)
# re-normalisation, unbiased std on both sides
P = rng.standard_normal((50, 6)) * rng.uniform(0.1, 3, 6) + rng.uniform(-1, 1, 6)
T = rng.standard_normal((300, 6)) * rng.uniform(0.1, 3, 6) + rng.uniform(-1, 1, 6)
np.save(f"{out}/renorm-P.npy", P); np.save(f"{out}/renorm-T.npy", T)
np.save(f"{out}/renorm-out.npy", (P - P.mean(0)) / P.std(0, ddof=1) * T.std(0, ddof=1) + T.mean(0))
print(json.dumps(dict(alphas=alphas, cv=res)))
`;

let dir = '';
let cv: { alphas: number[]; cv: Record<string, { alpha: number; scores: number[]; fitIntercept: boolean }> };

async function load(name: string): Promise<Mat> {
  return matFromNdArray(await readNpy(join(dir, `${name}.npy`)), name);
}

describe('ridge against scikit-learn', () => {
  before(async () => {
    await initCompute();
    dir = await mkdtemp(join(tmpdir(), 'lea-ridge-'));
    cv = JSON.parse(runOracle(ORACLE, [dir, JSON.stringify(CASES)])) as typeof cv;
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('takes the float64 arithmetic on the native backend: no tfjs kernel runs in a fit', async (t) => {
    if (tf.getBackend() !== 'tensorflow')
      return t.skip(`the ${tf.getBackend()} backend has no float64 kernels`);
    assert.equal(ridgeArithmetic(), 'float64');
    const x = await load('primal-X');
    const y = await load('primal-Y');
    const kernels = async (arithmetic?: RidgeArithmetic): Promise<string[]> =>
      (
        await tf.profile(async () => {
          await fitRidge(x, y, { alpha: 1, fitIntercept: true, arithmetic });
        })
      ).kernelNames;
    assert.deepEqual(await kernels(), []);
    assert.ok((await kernels('float32-split')).includes('BatchMatMul'));
  });

  for (const { arithmetic, tol } of ARITHMETICS) {
    for (const c of CASES) {
      it(`${arithmetic}, ${c.name}: ${c.n}x${c.p} -> ${c.t}, alpha ${c.alpha}, fit_intercept=${c.fitIntercept}`, async (t) => {
        if (arithmetic === 'float64' && ridgeArithmetic() !== 'float64')
          return t.skip('no float64 kernels here');
        const x = await load(`${c.name}-X`);
        const y = await load(`${c.name}-Y`);
        const model = await fitRidge(x, y, { alpha: c.alpha, fitIntercept: c.fitIntercept, arithmetic });
        assert.deepEqual([model.coef.rows, model.coef.cols], [c.p, c.t]);
        const coefErr = maxRelError(model.coef.data, (await load(`${c.name}-coef`)).data);
        t.diagnostic(`max|coef - sklearn| / max|sklearn| = ${coefErr.toExponential(2)}`);
        assert.ok(coefErr < tol, `coef relative error ${coefErr}`);
        if (c.fitIntercept) {
          const icErr = maxRelError(model.intercept, (await load(`${c.name}-intercept`)).data);
          assert.ok(icErr < tol, `intercept relative error ${icErr}`);
        } else {
          assert.ok(model.intercept.every((v) => v === 0));
        }
        const pred = await predictRidge(model, await load(`${c.name}-X2`), arithmetic);
        const predErr = maxRelError(pred.data, (await load(`${c.name}-pred`)).data);
        assert.ok(predErr < tol, `prediction relative error ${predErr}`);
      });
    }

    for (const name of ['cv-primal', 'cv-dual']) {
      it(`${arithmetic}: alpha selection matches GridSearchCV(KFold(5)) on ${name}`, async (t) => {
        if (arithmetic === 'float64' && ridgeArithmetic() !== 'float64')
          return t.skip('no float64 kernels here');
        const ref = cv.cv[name]!;
        const sel = await selectAlpha(await load(`${name}-X`), await load(`${name}-Y`), {
          alphas: cv.alphas,
          folds: 5,
          fitIntercept: ref.fitIntercept,
          arithmetic,
        });
        assert.equal(sel.alpha, ref.alpha);
        assert.ok(maxRelError(sel.scores, ref.scores) < tol, `scores ${sel.scores} vs ${ref.scores}`);
      });
    }
  }

  it('the paper maps are Ridge(500) without (decoding) and with (encoding) intercept', async () => {
    const x = await load('square-X');
    const y = await load('square-Y');
    const enc = await fitEncodingMap(x, y);
    assert.ok(maxRelError(enc.coef.data, (await load('square-coef')).data) < TOL);
    const dec = await fitDecodingMap(x, y);
    const direct = await fitRidge(x, y, { alpha: 500, fitIntercept: false });
    assert.deepEqual(dec.coef.data, direct.coef.data);
    assert.equal(dec.fitIntercept, false);
    assert.equal(enc.alpha, 500);
  });

  it('re-normalises predictions with unbiased std (spec §2.6)', async () => {
    const out = renormalise(await load('renorm-P'), await load('renorm-T'));
    assert.ok(maxRelError(out.data, (await load('renorm-out')).data) < 1e-12);
  });

  it('encodes features: ridge, re-normalisation to the training latents, then the decoder', async () => {
    const x = await load('primal-intercept-X');
    const y = await load('primal-intercept-Y');
    const map = await fitRidge(x, y, { alpha: 10, fitIntercept: true });
    const test = await load('primal-intercept-X2');
    const decoded: number[] = [];
    // A stand-in decoder: voxel pair (2·z_j, −z_j) per latent dimension j.
    const enc = await encodeFeatures(test, {
      map,
      latentTrain: y,
      decode: async (latents, rows) => {
        decoded.push(rows);
        return Float32Array.from(
          { length: latents.length * 2 },
          (_, k) => (k % 2 ? -1 : 2) * latents[k >> 1]!,
        );
      },
    });
    const expected = renormalise(await predictRidge(map, test), y);
    assert.ok(maxRelError(enc.latents.data, expected.data) < 1e-15);
    assert.deepEqual(decoded, [test.rows]);
    assert.equal(enc.voxelCount, 2 * y.cols);
    assert.ok(Math.abs(enc.voxels[2]! - 2 * expected.data[1]!) < 1e-5);
    await assert.rejects(
      encodeFeatures(test, { map, latentTrain: y, decode: async () => new Float32Array(5) }),
      /decoder returned 5 values for 7 latents/,
    );
  });
});

describe('ridge bad input', () => {
  const x = mat(4, 2, Float64Array.from([1, 2, 3, 4, 5, 6, 7, 9]));
  const y = mat(4, 1, Float64Array.from([1, 2, 3, 4]));

  it('rejects mismatched sample counts', async () => {
    await assert.rejects(
      fitRidge(x, mat(3, 1), { alpha: 1, fitIntercept: true }),
      /X has 4 samples but Y has 3/,
    );
  });
  it('rejects a negative or non-finite alpha', async () => {
    await assert.rejects(fitRidge(x, y, { alpha: -1, fitIntercept: false }), BadInputError);
    await assert.rejects(
      fitRidge(x, y, { alpha: NaN, fitIntercept: false }),
      /alpha must be a finite number/,
    );
  });
  it('rejects NaN and empty arrays when converting', () => {
    assert.throws(
      () => matFromNdArray(ndarray('float64', [2, 2], Float64Array.from([1, NaN, 3, 4])), '--x'),
      /--x: non-finite value NaN at row 0, column 1/,
    );
    assert.throws(() => matFromNdArray(ndarray('float32', [0, 3]), '--y'), /--y: empty array/);
    assert.throws(() => matFromNdArray(ndarray('float32', [2, 2, 2]), '--x'), /expected a 1-D or 2-D array/);
  });
  it('reports a singular system at alpha 0', async () => {
    const collinear = mat(3, 2, Float64Array.from([1, 2, 2, 4, 3, 6]));
    await assert.rejects(
      fitRidge(collinear, mat(3, 1, Float64Array.from([1, 2, 3])), { alpha: 0, fitIntercept: false }),
      /singular at alpha=0/,
    );
  });
  it('rejects a feature-count mismatch at prediction', async () => {
    const model = await fitRidge(x, y, { alpha: 1, fitIntercept: true });
    await assert.rejects(predictRidge(model, mat(2, 3)), /expects 2 features/);
  });
  it('rejects bad fold counts and empty candidate lists', async () => {
    await assert.rejects(
      selectAlpha(x, y, { alphas: [1], folds: 3, fitIntercept: true }),
      /folds must be an integer in \[2, 2\]/,
    );
    await assert.rejects(
      selectAlpha(x, y, { alphas: [], folds: 2, fitIntercept: true }),
      /at least one candidate/,
    );
  });
  it('rejects re-normalising a constant prediction dimension or a single row', () => {
    assert.throws(() => renormalise(mat(3, 1, Float64Array.from([2, 2, 2])), y), /dimension 0 is constant/);
    assert.throws(() => renormalise(mat(1, 1), y), /at least 2 rows/);
  });
});
