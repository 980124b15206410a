/**
 * SSIM with scikit-image's structural_similarity(data_range=255, channel_axis=-1) semantics (spec §5.4):
 * per channel, a 7^d uniform window over all d spatial axes (scipy uniform_filter), K1 = 0.01, K2 = 0.03,
 * sample covariances (× NP/(NP − 1), NP = 7^d), the map cropped by 3 on every side (so only windows fully
 * inside the image count), its mean, then the mean over channels. Computed in float64, which is what
 * skimage uses for integer and float64 input.
 *
 * - ssimPerImage: mean over items of the 2-D SSIM of each pair (the usual reading).
 * - ssimStack: the authors' metrics-only call on the whole (n, h, w, c) stacks, a 3-D SSIM whose window
 *   also spans 7 neighbouring items (so n >= 7).
 */
import { BadInputError } from '../errors.js';
import { checkPaired, item, mean, type Items, type MetricResult } from './common.js';

const WIN = 7;
const K1 = 0.01;
const K2 = 0.03;
export const SSIM_DATA_RANGE = 255;

/** Cyclic derangements averaged for per-image SSIM's chance level (all N − 1 of them when N − 1 <= this). */
const CHANCE_SHIFTS = 4;

export interface SsimResult extends MetricResult {
  perItem: number[];
  /** Mismatched pairs behind `chance`. */
  chancePairs: number;
}

/**
 * Sums over every full window of WIN along each axis of a C-order volume: the output has WIN − 1 fewer
 * elements along every axis (the "valid" region that skimage's crop keeps). Running sums along each axis,
 * as scipy's uniform_filter1d, vectorised over the elements after that axis.
 */
function windowSums(v: Float64Array, dims: number[]): Float64Array {
  let cur = v;
  const shape = [...dims];
  for (let axis = 0; axis < shape.length; axis++) {
    const len = shape[axis]!;
    const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outLen = len - WIN + 1;
    const out = new Float64Array(outer * outLen * inner);
    for (let o = 0; o < outer; o++) {
      const src = o * len * inner;
      const dst = o * outLen * inner;
      for (let w = 0; w < WIN; w++)
        for (let k = 0; k < inner; k++) out[dst + k]! += cur[src + w * inner + k]!;
      for (let i = 1; i < outLen; i++) {
        const d = dst + i * inner;
        const add = src + (i + WIN - 1) * inner;
        const sub = src + (i - 1) * inner;
        for (let k = 0; k < inner; k++) out[d + k] = out[d - inner + k]! + cur[add + k]! - cur[sub + k]!;
      }
    }
    shape[axis] = outLen;
    cur = out;
  }
  return cur;
}

/** Window means of x, y, x², y² (the per-image parts, reusable across pairs). */
interface Moments {
  ux: Float64Array;
  uxx: Float64Array;
}

function moments(x: Float64Array, dims: number[], np: number): Moments {
  const ux = windowSums(x, dims);
  const uxx = windowSums(
    x.map((v) => v * v),
    dims,
  );
  for (let k = 0; k < ux.length; k++) {
    ux[k]! /= np;
    uxx[k]! /= np;
  }
  return { ux, uxx };
}

function ssimFromMoments(
  a: Moments,
  b: Moments,
  x: Float64Array,
  y: Float64Array,
  dims: number[],
  dataRange: number,
): number {
  const np = WIN ** dims.length;
  const covNorm = np / (np - 1);
  const c1 = (K1 * dataRange) ** 2;
  const c2 = (K2 * dataRange) ** 2;
  const xy = new Float64Array(x.length);
  for (let k = 0; k < x.length; k++) xy[k] = x[k]! * y[k]!;
  const uxy = windowSums(xy, dims);
  let total = 0;
  for (let k = 0; k < uxy.length; k++) {
    const ux = a.ux[k]!;
    const uy = b.ux[k]!;
    const vx = covNorm * (a.uxx[k]! - ux * ux);
    const vy = covNorm * (b.uxx[k]! - uy * uy);
    const vxy = covNorm * (uxy[k]! / np - ux * uy);
    total += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  }
  return total / uxy.length;
}

/** One channel of an interleaved (..., channels) volume. */
function channel(v: Float64Array, channels: number, c: number): Float64Array {
  const out = new Float64Array(v.length / channels);
  for (let k = 0; k < out.length; k++) out[k] = v[k * channels + c]!;
  return out;
}

function checkExtent(dims: number[], what: string): void {
  if (dims.some((d) => d < WIN)) {
    throw new BadInputError(
      `${what}: SSIM's ${WIN}-wide window exceeds the extent [${dims.join(', ')}]; every axis needs >= ${WIN}`,
    );
  }
}

/** Per-channel SSIM state of one image: its channels and their window moments. */
function prepareImage(
  v: Float64Array,
  dims: number[],
  channels: number,
): { planes: Float64Array[]; mom: Moments[] } {
  const np = WIN ** dims.length;
  const planes = Array.from({ length: channels }, (_, c) => channel(v, channels, c));
  return { planes, mom: planes.map((p) => moments(p, dims, np)) };
}

function ssimPrepared(
  a: ReturnType<typeof prepareImage>,
  b: ReturnType<typeof prepareImage>,
  dims: number[],
  dataRange: number,
): number {
  let s = 0;
  for (let c = 0; c < a.planes.length; c++)
    s += ssimFromMoments(a.mom[c]!, b.mom[c]!, a.planes[c]!, b.planes[c]!, dims, dataRange);
  return s / a.planes.length;
}

/**
 * SSIM of two volumes of spatial shape `dims` with `channels` interleaved last, as
 * structural_similarity(x, y, data_range, channel_axis=-1).
 */
export function ssim(
  x: Float64Array,
  y: Float64Array,
  dims: number[],
  channels: number,
  dataRange = SSIM_DATA_RANGE,
): number {
  checkExtent(dims, 'ssim');
  return ssimPrepared(prepareImage(x, dims, channels), prepareImage(y, dims, channels), dims, dataRange);
}

function imageLayout(items: Items, what: string): { dims: number[]; channels: number } {
  if (items.itemShape.length !== 3) {
    throw new BadInputError(
      `${what}: expected images [N, H, W, C], got items of shape [${items.itemShape.join(', ')}]`,
    );
  }
  const [h, w, c] = items.itemShape as [number, number, number];
  return { dims: [h, w], channels: c };
}

/**
 * Mean over items of per-image SSIM. Chance is the mean SSIM of mismatched pairs (i, (i + s) mod N) over up
 * to CHANCE_SHIFTS shifts s spread over 1..N − 1: the exact mean over all i ≠ j when N − 1 <= CHANCE_SHIFTS,
 * an estimate otherwise (every pair costs as much as a whole image's SSIM: all N(N − 1) pairs of fifty
 * 256x256 images took 20 s).
 */
export function ssimPerImage(pred: Items, target: Items, dataRange = SSIM_DATA_RANGE): SsimResult {
  checkPaired(pred, target);
  const { dims, channels } = imageLayout(pred, 'ssim');
  checkExtent(dims, 'ssim');
  const p = Array.from({ length: pred.count }, (_, i) => prepareImage(item(pred, i), dims, channels));
  const t = Array.from({ length: target.count }, (_, i) => prepareImage(item(target, i), dims, channels));
  const perItem = p.map((pi, i) => ssimPrepared(pi, t[i]!, dims, dataRange));
  const n = pred.count;
  const shifts = Math.min(n - 1, CHANCE_SHIFTS);
  let sum = 0;
  for (let k = 0; k < shifts; k++) {
    const shift = 1 + Math.floor((k * (n - 1)) / shifts);
    for (let i = 0; i < n; i++) sum += ssimPrepared(p[i]!, t[(i + shift) % n]!, dims, dataRange);
  }
  const chancePairs = shifts * n;
  return { value: mean(perItem), chance: chancePairs > 0 ? sum / chancePairs : null, perItem, chancePairs };
}

/** The authors' whole-stack call: structural_similarity(pred, target, data_range=255, channel_axis=-1) on (n, h, w, c). */
export function ssimStack(pred: Items, target: Items, dataRange = SSIM_DATA_RANGE): MetricResult {
  checkPaired(pred, target);
  const { dims, channels } = imageLayout(pred, 'ssim-stack');
  const stackDims = [pred.count, ...dims];
  checkExtent(stackDims, 'ssim-stack');
  return { value: ssim(pred.data, target.data, stackDims, channels, dataRange), chance: null };
}
