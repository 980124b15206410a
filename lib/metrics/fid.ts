/**
 * Fréchet distance between two feature sets (FID when the features are Inception's; spec §5.3 uses
 * torchmetrics' 64-d Inception features, the miniature uses φ): with means μ and unbiased covariances Σ,
 *   d² = ‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2·Tr (Σ₁Σ₂)^½.
 * Tr (Σ₁Σ₂)^½ is Σ √λ over the eigenvalues of Σ₁^½·Σ₂·Σ₁^½, a symmetric PSD matrix similar to Σ₁Σ₂, so
 * two float64 symmetric eigendecompositions replace scipy.linalg.sqrtm's general Schur method (same value
 * on well-conditioned input; no spurious imaginary parts when a covariance is singular).
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { BadInputError } from '../errors.js';
import type { ImageBatch } from '../models/types.js';
import type { InceptionResize, InceptionV3 } from '../models/inception-v3.js';
import { itemsFrom, type Items, type MetricResult } from './common.js';

export interface FidResult extends MetricResult {
  /** ‖μ₁ − μ₂‖² */
  meanTerm: number;
  /** Tr Σ₁ + Tr Σ₂ − 2·Tr (Σ₁Σ₂)^½ */
  covarianceTerm: number;
}

function meanAndCovariance(x: Items, what: string): { mu: Float64Array; cov: Matrix } {
  if (x.count < 2)
    throw new BadInputError(`${what}: a covariance needs at least 2 feature rows, got ${x.count}`);
  const d = x.size;
  const mu = new Float64Array(d);
  for (let i = 0; i < x.count; i++) for (let k = 0; k < d; k++) mu[k]! += x.data[i * d + k]!;
  for (let k = 0; k < d; k++) mu[k]! /= x.count;
  const centred = new Matrix(x.count, d);
  for (let i = 0; i < x.count; i++)
    for (let k = 0; k < d; k++) centred.set(i, k, x.data[i * d + k]! - mu[k]!);
  const cov = centred
    .transpose()
    .mmul(centred)
    .div(x.count - 1);
  return { mu, cov };
}

function symmetricEigen(m: Matrix): { values: number[]; vectors: Matrix } {
  const sym = m.add(m.transpose()).div(2); // rounding leaves products slightly asymmetric
  const evd = new EigenvalueDecomposition(sym, { assumeSymmetric: true });
  return { values: evd.realEigenvalues, vectors: evd.eigenvectorMatrix };
}

/** Fréchet distance between `real` [N1, D] and `fake` [N2, D] features; lower is better, 0 for equal sets. */
export function frechetDistance(real: Items, fake: Items): FidResult {
  if (real.size !== fake.size) throw new BadInputError(`feature widths differ: ${real.size} vs ${fake.size}`);
  const a = meanAndCovariance(real, 'real features');
  const b = meanAndCovariance(fake, 'fake features');
  let meanTerm = 0;
  for (let k = 0; k < a.mu.length; k++) meanTerm += (a.mu[k]! - b.mu[k]!) ** 2;
  const ea = symmetricEigen(a.cov);
  const rootA = ea.vectors
    .mmul(Matrix.diag(ea.values.map((v) => Math.sqrt(Math.max(v, 0)))))
    .mmul(ea.vectors.transpose());
  const inner = symmetricEigen(rootA.mmul(b.cov).mmul(rootA));
  const traceRoot = inner.values.reduce((s, v) => s + Math.sqrt(Math.max(v, 0)), 0);
  const covarianceTerm = a.cov.trace() + b.cov.trace() - 2 * traceRoot;
  return { value: meanTerm + covarianceTerm, chance: null, meanTerm, covarianceTerm };
}

/**
 * FID as torchmetrics' `FrechetInceptionDistance(feature=64)` computes it (spec §5.3): uint8 images of each
 * set through the imported torch-fidelity InceptionV3 (its own resize to 299, '64' features), then the
 * Fréchet distance of the two feature sets in float64. `resize` 'tf1' reproduces torchmetrics with
 * antialias=False (and its releases before that option).
 */
export async function inceptionFid64(
  real: ImageBatch,
  fake: ImageBatch,
  inception: InceptionV3,
  resize: InceptionResize = 'antialias',
): Promise<FidResult> {
  const a = itemsFrom(await inception.features(real, 64, resize), "real images' Inception features");
  const b = itemsFrom(await inception.features(fake, 64, resize), "fake images' Inception features");
  return frechetDistance(a, b);
}
