/**
 * The few numbers the report computes itself: Pearson r between measured and predicted voxel patterns, per
 * test item over all voxels and per ROI (averaged over items). A constant pattern has no defined r; such
 * items are left out of a mean and counted, so the page can say how many were dropped.
 */
import type { NdArray } from '../tensors/ndarray.js';

/** Pearson r of a[off, off+len) and b[off, off+len); NaN when either slice is constant. */
export function pearsonSlice(a: ArrayLike<number>, b: ArrayLike<number>, off: number, len: number): number {
  let ma = 0;
  let mb = 0;
  for (let i = off; i < off + len; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= len;
  mb /= len;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = off; i < off + len; i++) {
    const da = a[i]! - ma;
    const db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : Number.NaN;
}

export interface MeanR {
  /** Mean over the items whose r is defined; NaN when none is. */
  mean: number;
  /** Items left out because measured or predicted was constant there (or held non-finite values). */
  undefinedItems: number;
}

function meanOfDefined(rs: number[]): MeanR {
  const ok = rs.filter(Number.isFinite);
  return {
    mean: ok.length ? ok.reduce((s, r) => s + r, 0) / ok.length : Number.NaN,
    undefinedItems: rs.length - ok.length,
  };
}

/** r over all K voxels of item i of two [N, K] arrays. */
export function itemPearson(measured: NdArray, predicted: NdArray, i: number): number {
  const k = measured.shape[1]!;
  return pearsonSlice(measured.data as Float32Array, predicted.data as Float32Array, i * k, k);
}

/** Mean over items of r over all voxels. */
export function meanItemPearson(measured: NdArray, predicted: NdArray): MeanR {
  const n = measured.shape[0]!;
  return meanOfDefined(Array.from({ length: n }, (_, i) => itemPearson(measured, predicted, i)));
}

/** Per ROI (contiguous voxel groups of the given sizes): mean over items of r over that ROI's voxels. */
export function roiPearson(measured: NdArray, predicted: NdArray, roiSizes: number[]): MeanR[] {
  const [n = 0, k = 0] = measured.shape;
  const m = measured.data as Float32Array;
  const p = predicted.data as Float32Array;
  let start = 0;
  return roiSizes.map((size) => {
    const rs = Array.from({ length: n }, (_, i) => pearsonSlice(m, p, i * k + start, size));
    start += size;
    return meanOfDefined(rs);
  });
}
