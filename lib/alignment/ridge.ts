/**
 * Multi-output ridge regression as scikit-learn's Ridge(solver='cholesky') computes it, the paper's two
 * alignment maps (spec §2.6), their transductive re-normalisation, and optional k-fold alpha selection.
 *
 * - fit_intercept centres X and Y with their column means (no scaling); intercept = mean(Y) − mean(X)·coef.
 * - primal when n_samples >= n_features: (XᵀX + αI)·coef = XᵀY; dual otherwise (sklearn's kernel path):
 *   (XXᵀ + αI)·D = Y, coef = Xᵀ·D.
 * - The products run on the tfjs backend with float64 accuracy (precise-matmul.ts) and the solve is a float64
 *   Cholesky (spd-solve.ts), so results agree with sklearn in float64, not only with its float32 run.
 * coef has shape [n_features, n_targets] (sklearn's coef_ transposed): Y ≈ X·coef + intercept.
 */
import { BadInputError } from '../errors.js';
import { mat, type Mat } from './matrix.js';
import { normalEquations, op, preciseGram, preciseMatMul } from './precise-matmul.js';
import { spdSolve } from './spd-solve.js';

/** The paper's alpha for both maps. */
export const PAPER_RIDGE_ALPHA = 500;

export interface RidgeOptions {
  alpha: number;
  fitIntercept: boolean;
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

/** Everything of a fit that does not depend on alpha, so alpha selection factorises once per fold. */
interface Prepared {
  fitIntercept: boolean;
  xMean: Float64Array | null;
  yMean: Float64Array | null;
  /** Centred (or raw) X, needed to map dual coefficients back. */
  x: Mat;
  dual: boolean;
  /** XᵀX (primal) or XXᵀ (dual). */
  gram: Mat;
  /** XᵀY (primal) or Y (dual). */
  rhs: Mat;
}

async function prepare(x: Mat, y: Mat, fitIntercept: boolean): Promise<Prepared> {
  checkPair(x, y);
  const xMean = fitIntercept ? columnMeans(x) : null;
  const yMean = fitIntercept ? columnMeans(y) : null;
  const xc = xMean ? subtractRow(x, xMean) : x;
  const yc = yMean ? subtractRow(y, yMean) : y;
  if (x.cols > x.rows) {
    return { fitIntercept, xMean, yMean, x: xc, dual: true, gram: await preciseGram(op(xc, true)), rhs: yc };
  }
  const { gram, cross } = await normalEquations(xc, yc);
  return { fitIntercept, xMean, yMean, x: xc, dual: false, gram, rhs: cross };
}

async function solve(p: Prepared, alpha: number): Promise<RidgeModel> {
  let sol: Mat;
  try {
    sol = await spdSolve(addToDiagonal(p.gram, alpha), p.rhs);
  } catch (err) {
    if (err instanceof BadInputError) {
      throw new BadInputError(`ridge system is singular at alpha=${alpha} (${err.message}); use alpha > 0`);
    }
    throw err;
  }
  const coef = p.dual ? await preciseMatMul(op(p.x, true), op(sol)) : sol;
  const intercept = new Float64Array(coef.cols);
  if (p.xMean && p.yMean) {
    for (let j = 0; j < coef.cols; j++) {
      let s = p.yMean[j]!;
      for (let i = 0; i < coef.rows; i++) s -= p.xMean[i]! * coef.data[i * coef.cols + j]!;
      intercept[j] = s;
    }
  }
  return { coef, intercept, alpha, fitIntercept: p.fitIntercept };
}

/** Fits Y ≈ X·coef + intercept with ridge penalty alpha·‖coef‖². */
export async function fitRidge(x: Mat, y: Mat, options: RidgeOptions): Promise<RidgeModel> {
  checkAlpha(options.alpha, 'alpha');
  return solve(await prepare(x, y, options.fitIntercept), options.alpha);
}

/** X·coef + intercept. */
export async function predictRidge(model: RidgeModel, x: Mat): Promise<Mat> {
  if (x.cols !== model.coef.rows) {
    throw new BadInputError(`model expects ${model.coef.rows} features, got an array with ${x.cols} columns`);
  }
  if (x.rows === 0) throw new BadInputError('cannot predict an empty array');
  const out = await preciseMatMul(op(x), op(model.coef));
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
  options: { alphas: number[]; folds: number; fitIntercept: boolean },
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
  const scores = new Array<number>(alphas.length).fill(0);
  let start = 0;
  for (let f = 0; f < folds; f++) {
    const size = Math.floor(x.rows / folds) + (f < x.rows % folds ? 1 : 0);
    const test = Array.from({ length: size }, (_, i) => start + i);
    const train = Array.from({ length: x.rows - size }, (_, i) => (i < start ? i : i + size));
    start += size;
    const prepared = await prepare(rows(x, train), rows(y, train), options.fitIntercept);
    const xTest = rows(x, test);
    const yTest = rows(y, test);
    for (let a = 0; a < alphas.length; a++) {
      const model = await solve(prepared, alphas[a]!);
      scores[a]! += r2(yTest, await predictRidge(model, xTest)) / folds;
    }
  }
  let best = 0;
  for (let a = 1; a < alphas.length; a++) if (scores[a]! > scores[best]!) best = a;
  return { alpha: alphas[best]!, scores };
}
