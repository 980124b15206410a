/**
 * Multi-output ridge regression as scikit-learn's Ridge(solver='cholesky') computes it, the paper's two
 * alignment maps (spec §2.6), their transductive re-normalisation, and optional k-fold alpha selection.
 *
 * - fit_intercept centres X and Y with their column means (no scaling); intercept = mean(Y) − mean(X)·coef.
 * - primal when n_samples >= n_features: (XᵀX + αI)·coef = XᵀY; dual otherwise (sklearn's kernel path):
 *   (XXᵀ + αI)·D = Y, coef = Xᵀ·D.
 * - The products and the Cholesky solve are float64, so results agree with sklearn in float64, not only with
 *   its float32 run. Two arithmetics give that (RidgeArithmetic): on the native backend with the patched addon,
 *   TensorFlow's own float64 kernels as hand-built functions (float64-ops.ts); elsewhere (the wasm and cpu
 *   backends, an unpatched addon) tfjs has float32 matmuls only, so the products are emulated with a split
 *   of each operand into float32 pieces (precise-matmul.ts) and the Cholesky is blocked in JS (spd-solve.ts).
 * coef has shape [n_features, n_targets] (sklearn's coef_ transposed): Y ≈ X·coef + intercept.
 */
import * as tf from '@tensorflow/tfjs';
import { compiledModeFor } from '../compute/tf-function.js';
import { BadInputError } from '../errors.js';
import { centre64, gram64, matMul64, normalEquations64, spdSolve64, take, upload64 } from './float64-ops.js';
import { mat, type Mat } from './matrix.js';
import { normalEquations, op, preciseGram, preciseMatMul } from './precise-matmul.js';
import { spdSolve } from './spd-solve.js';

/** The paper's alpha for both maps. */
export const PAPER_RIDGE_ALPHA = 500;

/**
 * 'float64': TensorFlow's float64 kernels (native backend with the patched addon); 'float32-split': float64
 * products emulated with tfjs float32 matmuls (any backend).
 */
export type RidgeArithmetic = 'float64' | 'float32-split';

/** The arithmetic this backend gives: 'float64' wherever hand-built TensorFlow functions run. */
export function ridgeArithmetic(): RidgeArithmetic {
  return compiledModeFor('graph').mode === 'graph' ? 'float64' : 'float32-split';
}

export interface RidgeOptions {
  alpha: number;
  fitIntercept: boolean;
  /** Defaults to ridgeArithmetic(). */
  arithmetic?: RidgeArithmetic;
}

export interface RidgeModel {
  /** [n_features, n_targets] */
  coef: Mat;
  /** [n_targets]; zeros without an intercept. */
  intercept: Float64Array;
  alpha: number;
  fitIntercept: boolean;
}

function checkAlpha(alpha: number, what: string): void {
  if (!Number.isFinite(alpha) || alpha < 0)
    throw new BadInputError(`${what} must be a finite number >= 0, got ${alpha}`);
}

function checkPair(x: Mat, y: Mat): void {
  if (x.rows === 0 || x.cols === 0 || y.cols === 0) {
    throw new BadInputError(
      `ridge needs non-empty X and Y, got X ${x.rows}x${x.cols} and Y ${y.rows}x${y.cols}`,
    );
  }
  if (x.rows !== y.rows) throw new BadInputError(`X has ${x.rows} samples but Y has ${y.rows}`);
}

function columnMeans(m: Mat): Float64Array {
  const out = new Float64Array(m.cols);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) out[j]! += m.data[i * m.cols + j]!;
  for (let j = 0; j < m.cols; j++) out[j]! /= m.rows;
  return out;
}

function subtractRow(m: Mat, row: Float64Array): Mat {
  const out = mat(m.rows, m.cols);
  for (let i = 0; i < m.rows; i++)
    for (let j = 0; j < m.cols; j++) out.data[i * m.cols + j] = m.data[i * m.cols + j]! - row[j]!;
  return out;
}

function addToDiagonal(a: Mat, alpha: number): Mat {
  const out = mat(a.rows, a.cols, a.data.slice());
  for (let i = 0; i < a.rows; i++) out.data[i * a.cols + i]! += alpha;
  return out;
}

/** The alpha-independent part of a fit, so alpha selection prepares it once per fold. */
interface System {
  /** Column means of X and Y when centred (fit_intercept), else null. */
  xMean: Float64Array | null;
  yMean: Float64Array | null;
  /** coef for one alpha. */
  solve(alpha: number): Promise<Mat>;
  dispose(): void;
}

interface Arithmetic {
  /** Primal ((XᵀX + αI)·coef = XᵀY) when X has at least as many rows as columns, else dual. */
  system(x: Mat, y: Mat, centre: boolean): Promise<System>;
  /** x·coef */
  product(x: Mat, coef: Mat): Promise<Mat>;
}

const float64: Arithmetic = {
  async system(x, y, centre) {
    let xs = upload64(x);
    let ys = upload64(y);
    let xMean: Float64Array | null = null;
    let yMean: Float64Array | null = null;
    if (centre) {
      const cx = await centre64(xs);
      const cy = await centre64(ys);
      tf.dispose([xs.bits, ys.bits]);
      [xs, ys, xMean, yMean] = [cx.centred, cy.centred, cx.mean, cy.mean];
    }
    if (x.cols > x.rows) {
      const kernel = gram64(xs);
      return {
        xMean,
        yMean,
        async solve(alpha) {
          const dual = await spdSolve64(kernel, ys, alpha);
          const coef = matMul64(xs, dual, true);
          dual.bits.dispose();
          return take(coef);
        },
        dispose: () => tf.dispose([xs.bits, ys.bits, kernel.bits]),
      };
    }
    const { gram, cross } = normalEquations64(xs, ys);
    tf.dispose([xs.bits, ys.bits]);
    return {
      xMean,
      yMean,
      solve: async (alpha) => take(await spdSolve64(gram, cross, alpha)),
      dispose: () => tf.dispose([gram.bits, cross.bits]),
    };
  },
  async product(x, coef) {
    const xs = upload64(x);
    const cs = upload64(coef);
    try {
      return await take(matMul64(xs, cs));
    } finally {
      tf.dispose([xs.bits, cs.bits]);
    }
  },
};

const float32Split: Arithmetic = {
  async system(x, y, centre) {
    const xMean = centre ? columnMeans(x) : null;
    const yMean = centre ? columnMeans(y) : null;
    const xc = xMean ? subtractRow(x, xMean) : x;
    const yc = yMean ? subtractRow(y, yMean) : y;
    const none = (): void => undefined;
    if (x.cols > x.rows) {
      const kernel = await preciseGram(op(xc, true));
      return {
        xMean,
        yMean,
        solve: async (alpha) =>
          preciseMatMul(op(xc, true), op(await spdSolve(addToDiagonal(kernel, alpha), yc))),
        dispose: none,
      };
    }
    const { gram, cross } = await normalEquations(xc, yc);
    return { xMean, yMean, solve: (alpha) => spdSolve(addToDiagonal(gram, alpha), cross), dispose: none };
  },
  product: (x, coef) => preciseMatMul(op(x), op(coef)),
};

function arithmeticOf(choice: RidgeArithmetic = ridgeArithmetic()): Arithmetic {
  return choice === 'float64' ? float64 : float32Split;
}

interface Prepared {
  fitIntercept: boolean;
  system: System;
}

async function prepare(x: Mat, y: Mat, fitIntercept: boolean, arithmetic: Arithmetic): Promise<Prepared> {
  checkPair(x, y);
  return { fitIntercept, system: await arithmetic.system(x, y, fitIntercept) };
}

async function solve(p: Prepared, alpha: number): Promise<RidgeModel> {
  let coef: Mat;
  try {
    coef = await p.system.solve(alpha);
  } catch (err) {
    if (err instanceof BadInputError) {
      throw new BadInputError(`ridge system is singular at alpha=${alpha} (${err.message}); use alpha > 0`);
    }
    throw err;
  }
  const intercept = new Float64Array(coef.cols);
  const { xMean, yMean } = p.system;
  if (xMean && yMean) {
    for (let j = 0; j < coef.cols; j++) {
      let s = yMean[j]!;
      for (let i = 0; i < coef.rows; i++) s -= xMean[i]! * coef.data[i * coef.cols + j]!;
      intercept[j] = s;
    }
  }
  return { coef, intercept, alpha, fitIntercept: p.fitIntercept };
}

/** Fits Y ≈ X·coef + intercept with ridge penalty alpha·‖coef‖². */
export async function fitRidge(x: Mat, y: Mat, options: RidgeOptions): Promise<RidgeModel> {
  checkAlpha(options.alpha, 'alpha');
  const prepared = await prepare(x, y, options.fitIntercept, arithmeticOf(options.arithmetic));
  try {
    return await solve(prepared, options.alpha);
  } finally {
    prepared.system.dispose();
  }
}

/** X·coef + intercept. */
export async function predictRidge(model: RidgeModel, x: Mat, arithmetic?: RidgeArithmetic): Promise<Mat> {
  if (x.cols !== model.coef.rows) {
    throw new BadInputError(`model expects ${model.coef.rows} features, got an array with ${x.cols} columns`);
  }
  if (x.rows === 0) throw new BadInputError('cannot predict an empty array');
  const out = await arithmeticOf(arithmetic).product(x, model.coef);
  const t = out.cols;
  for (let i = 0; i < out.rows; i++) for (let j = 0; j < t; j++) out.data[i * t + j]! += model.intercept[j]!;
  return out;
}

/** Decoding map (spec §2.6): fMRI latent → image feature, Ridge(alpha=500, fit_intercept=False). */
export function fitDecodingMap(latents: Mat, features: Mat): Promise<RidgeModel> {
  return fitRidge(latents, features, { alpha: PAPER_RIDGE_ALPHA, fitIntercept: false });
}

/** Encoding map (spec §2.6): image feature → fMRI latent, Ridge(alpha=500, fit_intercept=True). */
export function fitEncodingMap(features: Mat, latents: Mat): Promise<RidgeModel> {
  return fitRidge(features, latents, { alpha: PAPER_RIDGE_ALPHA, fitIntercept: true });
}

/** Column means and unbiased (N−1) standard deviations. */
function meanStd(m: Mat, what: string): { mean: Float64Array; std: Float64Array } {
  if (m.rows < 2)
    throw new BadInputError(`${what} needs at least 2 rows for a standard deviation, got ${m.rows}`);
  const mean = columnMeans(m);
  const std = new Float64Array(m.cols);
  for (let i = 0; i < m.rows; i++) {
    for (let j = 0; j < m.cols; j++) {
      const d = m.data[i * m.cols + j]! - mean[j]!;
      std[j]! += d * d;
    }
  }
  for (let j = 0; j < m.cols; j++) std[j] = Math.sqrt(std[j]! / (m.rows - 1));
  return { mean, std };
}

/**
 * Transductive re-normalisation (spec §2.6): per dimension, standardise the test predictions with their own
 * mean and unbiased std, then give them the training targets' mean and unbiased std.
 */
export function renormalise(pred: Mat, targetTrain: Mat): Mat {
  if (pred.cols !== targetTrain.cols) {
    throw new BadInputError(
      `predictions have ${pred.cols} dimensions but training targets have ${targetTrain.cols}`,
    );
  }
  const p = meanStd(pred, 'predictions');
  const t = meanStd(targetTrain, 'training targets');
  const zero = p.std.findIndex((s) => s === 0);
  if (zero >= 0)
    throw new BadInputError(
      `prediction dimension ${zero} is constant over the test set; cannot re-normalise`,
    );
  const out = mat(pred.rows, pred.cols);
  for (let i = 0; i < pred.rows; i++) {
    for (let j = 0; j < pred.cols; j++) {
      const k = i * pred.cols + j;
      out.data[k] = ((pred.data[k]! - p.mean[j]!) / p.std[j]!) * t.std[j]! + t.mean[j]!;
    }
  }
  return out;
}

/** R² averaged uniformly over targets, with sklearn's r2_score conventions for constant targets. */
function r2(yTrue: Mat, yPred: Mat): number {
  const mean = columnMeans(yTrue);
  let total = 0;
  for (let j = 0; j < yTrue.cols; j++) {
    let ssRes = 0;
    let ssTot = 0;
    for (let i = 0; i < yTrue.rows; i++) {
      const k = i * yTrue.cols + j;
      ssRes += (yTrue.data[k]! - yPred.data[k]!) ** 2;
      ssTot += (yTrue.data[k]! - mean[j]!) ** 2;
    }
    total += ssTot === 0 ? (ssRes === 0 ? 1 : 0) : 1 - ssRes / ssTot;
  }
  return total / yTrue.cols;
}

function rows(m: Mat, idx: number[]): Mat {
  const out = mat(idx.length, m.cols);
  idx.forEach((r, i) => out.data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
  return out;
}

export interface AlphaSelection {
  alpha: number;
  /** Mean held-out R² per candidate, in the order given. */
  scores: number[];
}

/**
 * Picks alpha by k-fold cross-validation like sklearn's GridSearchCV(Ridge(), cv=KFold(k)): contiguous folds
 * (the first n % k folds one sample larger), held-out R² averaged over targets then over folds, and the
 * first candidate with the best mean score.
 */
export async function selectAlpha(
  x: Mat,
  y: Mat,
  options: { alphas: number[]; folds: number; fitIntercept: boolean; arithmetic?: RidgeArithmetic },
): Promise<AlphaSelection> {
  checkPair(x, y);
  const { alphas, folds } = options;
  if (alphas.length === 0) throw new BadInputError('alpha selection needs at least one candidate alpha');
  alphas.forEach((a) => checkAlpha(a, 'candidate alpha'));
  // Every held-out fold needs 2 samples for its R² to be defined.
  const maxFolds = Math.floor(x.rows / 2);
  if (!Number.isInteger(folds) || folds < 2 || folds > maxFolds) {
    throw new BadInputError(
      `folds must be an integer in [2, ${maxFolds}] for ${x.rows} samples, got ${folds}`,
    );
  }
  const arithmetic = arithmeticOf(options.arithmetic);
  const scores = new Array<number>(alphas.length).fill(0);
  let start = 0;
  for (let f = 0; f < folds; f++) {
    const size = Math.floor(x.rows / folds) + (f < x.rows % folds ? 1 : 0);
    const test = Array.from({ length: size }, (_, i) => start + i);
    const train = Array.from({ length: x.rows - size }, (_, i) => (i < start ? i : i + size));
    start += size;
    const prepared = await prepare(rows(x, train), rows(y, train), options.fitIntercept, arithmetic);
    const xTest = rows(x, test);
    const yTest = rows(y, test);
    try {
      for (let a = 0; a < alphas.length; a++) {
        const model = await solve(prepared, alphas[a]!);
        scores[a]! += r2(yTest, await predictRidge(model, xTest, options.arithmetic)) / folds;
      }
    } finally {
      prepared.system.dispose();
    }
  }
  let best = 0;
  for (let a = 1; a < alphas.length; a++) if (scores[a]! > scores[best]!) best = a;
  return { alpha: alphas[best]!, scores };
}
