/**
 * Feature-level rows around the decoding ridge (spec §2.6, §7): how well the ridge's test output identifies
 * the test images' φ, at the alpha the run used and, when that alpha came from CV, at the config's
 * `ridgeAlpha` too (the ablation: the paper's 500); and the reference ridge straight from voxels to φ,
 * which shows how much of the task a linear read-out solves without the autoencoder. The encoding ridge gets
 * the same pair of rows at the latent level (its prediction against the test fMRI's latents).
 */
import { matFromNdArray, type Mat } from '../alignment/matrix.js';
import { fitRidge, predictRidge, renormalise, selectAlpha } from '../alignment/ridge.js';
import type { NdArray } from '../tensors/ndarray.js';
import { itemsOf } from './common.js';
import type { MetricRow } from './decoding.js';
import { perSamplePearson } from './encoding.js';
import { featureTwoWay } from './identification.js';

export interface AlignmentInput {
  latentsTrain: NdArray;
  latentsTest: NdArray;
  phiTrain: NdArray;
  phiTest: NdArray;
  voxelsTrain: NdArray;
  voxelsTest: NdArray;
  /** The ridge stage's re-normalised test output (at its CV alpha, or ridgeAlpha). */
  decoded: NdArray;
  alignment: { ridgeAlpha: number; cvAlphas?: number[]; cvFolds: number };
}

const items = (m: Mat) => itemsOf(m.data, m.rows, [m.cols]);

/** z → φ without intercept (the decoding map), test predictions re-normalised to the training φ. */
async function decodeAt(x: Mat, y: Mat, xTest: Mat, alpha: number): Promise<Mat> {
  return renormalise(await predictRidge(await fitRidge(x, y, { alpha, fitIntercept: false }), xTest), y);
}

/** φ → z with intercept (the encoding map), test predictions re-normalised to the training latents. */
async function encodeAt(phi: Mat, z: Mat, phiTest: Mat, alpha: number): Promise<Mat> {
  return renormalise(await predictRidge(await fitRidge(phi, z, { alpha, fitIntercept: true }), phiTest), z);
}

/** The encoding ridge at the run's alpha (CV, or ridgeAlpha) and, after CV, at ridgeAlpha: latent-level r. */
async function encodingRows(input: AlignmentInput): Promise<MetricRow[]> {
  const { ridgeAlpha, cvAlphas, cvFolds } = input.alignment;
  const phi = matFromNdArray(input.phiTrain, 'features_train');
  const phiTest = matFromNdArray(input.phiTest, 'features_test');
  const z = matFromNdArray(input.latentsTrain, 'latents_train');
  const zTest = items(matFromNdArray(input.latentsTest, 'latents_test'));
  const row = async (name: string, alpha: number): Promise<MetricRow> => {
    const r = perSamplePearson(items(await encodeAt(phi, z, phiTest, alpha)), zTest);
    return { name, value: r.value, chance: r.chance, perItem: [r.perItem] };
  };
  if (!cvAlphas) return [await row(`align.z_pearson@alpha${ridgeAlpha}`, ridgeAlpha)];
  const cv = await selectAlpha(phi, z, { alphas: cvAlphas, folds: cvFolds, fitIntercept: true });
  return [
    await row('align.z_pearson@cv', cv.alpha),
    await row(`align.z_pearson@alpha${ridgeAlpha}`, ridgeAlpha),
  ];
}

export async function alignmentMetrics(input: AlignmentInput): Promise<MetricRow[]> {
  const { ridgeAlpha, cvAlphas, cvFolds } = input.alignment;
  const phiTrain = matFromNdArray(input.phiTrain, 'features_train');
  const phiTest = items(matFromNdArray(input.phiTest, 'features_test'));
  const row = (name: string, pred: Mat): MetricRow => {
    const r = featureTwoWay(items(pred), phiTest);
    return { name, value: r.value, chance: r.chance, perItem: [r.perItem] };
  };
  const rows = [
    row(
      `align.phi_twoway@${cvAlphas ? 'cv' : `alpha${ridgeAlpha}`}`,
      matFromNdArray(input.decoded, 'decoded'),
    ),
  ];
  if (cvAlphas) {
    const zTrain = matFromNdArray(input.latentsTrain, 'latents_train');
    const zTest = matFromNdArray(input.latentsTest, 'latents_test');
    rows.push(
      row(`align.phi_twoway@alpha${ridgeAlpha}`, await decodeAt(zTrain, phiTrain, zTest, ridgeAlpha)),
    );
  }
  rows.push(...(await encodingRows(input)));
  const vTrain = matFromNdArray(input.voxelsTrain, 'train_fmri');
  const alpha = cvAlphas
    ? (await selectAlpha(vTrain, phiTrain, { alphas: cvAlphas, folds: cvFolds, fitIntercept: false })).alpha
    : ridgeAlpha;
  const vTest = matFromNdArray(input.voxelsTest, 'test_fmri');
  rows.push(row('ref.voxels_to_phi.phi_twoway', await decodeAt(vTrain, phiTrain, vTest, alpha)));
  return rows;
}
