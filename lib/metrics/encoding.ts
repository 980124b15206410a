/**
 * Encoding metrics on predicted versus measured test fMRI, [N items, K voxels] (spec §5 "Encoding"; the
 * paper's exact choice is unverified, so all four are offered and per-sample r is the primary one):
 * per-sample Pearson r over voxels, per-voxel Pearson r over items, MSE, and 2-way identification by
 * correlation. Pearson r of a constant vector is undefined and rejected.
 */
import { BadInputError } from '../errors.js';
import { checkPaired, item, mean, pearson, type Items, type MetricResult } from './common.js';
import { mse, twoWayIdentification, type IdentificationResult } from './identification.js';

export interface PerItemResult extends MetricResult {
  perItem: number[];
}

export interface PerVoxelResult extends MetricResult {
  perVoxel: number[];
}

function checkVoxels(pred: Items, target: Items, minCount: number): void {
  checkPaired(pred, target, minCount);
  if (pred.itemShape.length !== 1) {
    throw new BadInputError(`expected voxel rows [N, K], got items of shape [${pred.itemShape.join(', ')}]`);
  }
}

function definedR(r: number, what: string): number {
  if (Number.isNaN(r)) throw new BadInputError(`${what} is constant, so its Pearson r is undefined`);
  return r;
}

/** Mean over i ≠ j of f(pred_i, target_j): the expected score of a random derangement of the pairs. */
function mismatchedMean(
  pred: Items,
  target: Items,
  f: (a: Float64Array, b: Float64Array) => number,
): number | null {
  const n = pred.count;
  if (n < 2) return null;
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) s += f(item(pred, i), item(target, j));
  return s / (n * (n - 1));
}

/** Per-sample r: Pearson r between each predicted and measured voxel vector, averaged over items. */
export function perSamplePearson(pred: Items, target: Items): PerItemResult {
  checkVoxels(pred, target, 1);
  const perItem = Array.from({ length: pred.count }, (_, i) =>
    definedR(pearson(item(pred, i), item(target, i)), `item ${i}`),
  );
  return { value: mean(perItem), chance: mismatchedMean(pred, target, (a, b) => pearson(a, b)), perItem };
}

/** Per-voxel r: Pearson r across items for each voxel, averaged over voxels; its chance level is exactly 0. */
export function perVoxelPearson(pred: Items, target: Items): PerVoxelResult {
  checkVoxels(pred, target, 2);
  const k = pred.size;
  const perVoxel = Array.from({ length: k }, (_, v) =>
    definedR(pearson(pred.data, target.data, pred.count, k, v, v), `voxel ${v} (across items)`),
  );
  return { value: mean(perVoxel), chance: 0, perVoxel };
}

/** Mean squared error over all items and voxels; chance is the MSE of mismatched pairs. */
export function meanSquaredError(pred: Items, target: Items): PerItemResult {
  checkPaired(pred, target, 1);
  const perItem = Array.from({ length: pred.count }, (_, i) => mse(item(pred, i), item(target, i)));
  return { value: mean(perItem), chance: mismatchedMean(pred, target, mse), perItem };
}

/** 2-way identification of voxel patterns by correlation (chance 0.5). */
export function encodingTwoWay(pred: Items, target: Items): IdentificationResult {
  checkVoxels(pred, target, 2);
  return twoWayIdentification(pred, target, 'pcc');
}
