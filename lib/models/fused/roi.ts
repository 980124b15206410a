/**
 * The fMRI autoencoder's two ROI-wise ends (spec §2.1; LEA's fMRI_Autoencoder `patch_embed` and
 * `channel_mapper` + `decoder_pred`), each as the PyTorch modules run them (plain, one op per ROI) and fused
 * into a few ops over all ROIs at once with a hand-written backward (about 25 kernels against ~100 for the
 * plain tokeniser): compiled with XLA the autoencoder step is still 1.23x slower plain at width 128 (README,
 * "Hand-written backwards, measured compiled").
 *
 *   tokeniser, ROI i: x_i [B, n_i] → Conv1d(1→T, k3, pad 1) [B, n_i, T] → transpose → Linear(n_i→D) [B, T, D]
 *   voxel head, ROI i: h_i [B, T, Dd] → Linear(Dd→n_i) [B, T, n_i] → shared Conv1d(T→1, k3, pad 1) → [B, n_i]
 * ROI outputs are concatenated in order: tokens [B, R·T, D], voxels [B, K].
 */
import * as tf from '@tensorflow/tfjs';
import { linear, type WeightBias } from '../layers.js';
import { runFused } from './op.js';
import { columnSums, constant } from './pieces.js';

/** `patch_embed.layers.{i}`: its Conv1d (`.0`, weight [3, 1, T]) and Linear (`.1`, weight [n_i, D]). */
export type RoiEmbedParams = { conv: WeightBias; linear: WeightBias }[];

/** `channel_mapper.{i}.0` (weight [Dd, n_i]) per ROI, and the shared `decoder_pred` Conv1d (weight [3, T, 1]). */
export interface VoxelHeadParams {
  channelMapper: WeightBias[];
  decoderPred: WeightBias;
}

/** Voxels per ROI, read from the Linear weights. */
const roiSizesOf = (linears: WeightBias[], axis: 0 | 1) => linears.map((l) => l.weight.shape[axis] as number);

/** ROI i's tokeniser, plain: x [B, K] → [B, R·T, D]. */
export function roiTokensPlain(x: tf.Tensor2D, p: RoiEmbedParams): tf.Tensor3D {
  const [b] = x.shape;
  let start = 0;
  const rois = p.map(({ conv, linear: lin }) => {
    const [n, d] = lin.weight.shape as [number, number];
    const xi = tf.reshape(tf.slice(x, [0, start], [b, n]), [b, n, 1]) as tf.Tensor3D;
    start += n;
    const y = tf.add(tf.conv1d(xi, conv.weight as tf.Tensor3D, 1, 'same'), conv.bias); // [B, n, T]
    const t = y.shape[2] as number;
    const rows = tf.reshape(tf.transpose(y, [0, 2, 1]), [b * t, n]); // [B·T, n]
    return tf.reshape(linear(rows, lin.weight, lin.bias), [b, t, d]);
  });
  return tf.concat(rois, 1) as tf.Tensor3D;
}

/** The voxel head, plain: h [B, R·T, Dd] → [B, K]. */
export function voxelHeadPlain(h: tf.Tensor3D, p: VoxelHeadParams): tf.Tensor2D {
  const [b, , dd] = h.shape;
  const t = p.decoderPred.weight.shape[1] as number;
  const rois = p.channelMapper.map((mapper, i) => {
    const n = mapper.weight.shape[1] as number;
    const hi = tf.reshape(tf.slice(h, [0, i * t, 0], [b, t, dd]), [b * t, dd]);
    const y = tf.reshape(linear(hi, mapper.weight, mapper.bias), [b, t, n]); // T channels of n voxels
    const conv = tf.conv1d(
      tf.transpose(y, [0, 2, 1]) as tf.Tensor3D,
      p.decoderPred.weight as tf.Tensor3D,
      1,
      'same',
    );
    return tf.reshape(tf.add(conv, p.decoderPred.bias), [b, n]);
  });
  return tf.concat(rois, 1) as tf.Tensor2D;
}

/**
 * The tokeniser fused: each voxel's 3-tap window within its ROI is gathered once [B, K, 3], every voxel uses its
 * ROI's kernel [K, 3, T], and the R Linear layers run as one matmul with a block-diagonal [K, R·D] weight (R
 * times the FLOPs of separate matmuls: ~3% of a paper-size step). x is data, not differentiated.
 */
export function roiTokens(x: tf.Tensor2D, p: RoiEmbedParams): tf.Tensor3D {
  const [b, k] = x.shape;
  const sizes = roiSizesOf(
    p.map((roi) => roi.linear),
    0,
  );
  const [r, t, d] = [
    sizes.length,
    p[0]?.conv.weight.shape[2] as number,
    p[0]?.linear.weight.shape[1] as number,
  ];
  const { window, roiOfVoxel } = roiLayout(sizes);
  const x3 = tf.reshape(tf.gather(tf.concat([x, constant([b, 1], 0)], 1), window, 1), [b, k, 3]);
  const forward = (q: RoiEmbedParams) => {
    const kernels = tf.gather(tf.reshape(tf.stack(q.map((roi) => roi.conv.weight)), [r, 3, t]), roiOfVoxel); // [K, 3, T]
    const biases = tf.gather(tf.stack(q.map((roi) => roi.conv.bias)), roiOfVoxel); // [K, T]
    const conv = tf.add(tf.einsum('bks,kst->bkt', x3, kernels), biases); // [B, K, T]
    const rows = tf.reshape(tf.transpose(conv, [0, 2, 1]), [b * t, k]); // [B·T, K]
    const blocks = q.map((roi, i) =>
      tf.pad(roi.linear.weight, [
        [0, 0],
        [i * d, (r - 1 - i) * d],
      ]),
    );
    const w = tf.concat(blocks, 0); // [K, R·D] block-diagonal
    const y = linear(rows, w, tf.concat(q.map((roi) => roi.linear.bias))); // [B·T, R·D]
    const value = tf.reshape(tf.transpose(tf.reshape(y, [b, t, r, d]), [0, 2, 1, 3]), [b, r * t, d]);
    return { value, saved: { x3, rows, w } };
  };
  const backward = (dy: tf.Tensor, s: { x3: tf.Tensor; rows: tf.Tensor; w: tf.Tensor }) => {
    const dY = tf.reshape(tf.transpose(tf.reshape(dy, [b, r, t, d]), [0, 2, 1, 3]), [b * t, r * d]);
    const dW = tf.matMul(s.rows as tf.Tensor2D, dY as tf.Tensor2D, true, false); // [K, R·D]: keep each ROI's block
    const dLinB = tf.split(columnSums(dY), r);
    const dConv = tf.transpose(
      tf.reshape(tf.matMul(dY as tf.Tensor2D, s.w as tf.Tensor2D, false, true), [b, t, k]),
      [0, 2, 1],
    ); // [B, K, T]
    // per voxel, then summed over each ROI's voxels
    const dKernels = tf.unstack(
      tf.reshape(tf.unsortedSegmentSum(tf.einsum('bks,bkt->kst', s.x3, dConv), roiOfVoxel, r), [r, 3, 1, t]),
    ); // [R] x [3, 1, T]
    const dBiases = tf.unstack(tf.unsortedSegmentSum(tf.sum(dConv, 0), roiOfVoxel, r)); // [R] x [T]
    let offset = 0;
    return sizes.map((n, i) => {
      const dLinW = tf.slice(dW, [offset, i * d], [n, d]);
      offset += n;
      return {
        conv: { weight: dKernels[i] as tf.Tensor, bias: dBiases[i] as tf.Tensor },
        linear: { weight: dLinW, bias: dLinB[i] as tf.Tensor },
      };
    });
  };
  return runFused(p, { forward, backward }) as tf.Tensor3D;
}

/**
 * The voxel head fused: the R Linear(Dd→n_i) layers run as one matmul with a block-diagonal [R·Dd, K] weight;
 * the shared Conv1d(T→1, k3) is a [T, 3] matmul followed by summing each voxel's 3-tap window within its ROI.
 */
export function voxelHead(h: tf.Tensor3D, p: VoxelHeadParams): tf.Tensor2D {
  const [b, , dd] = h.shape;
  const sizes = roiSizesOf(p.channelMapper, 1);
  const [r, t] = [sizes.length, p.decoderPred.weight.shape[1] as number];
  const k = sizes.reduce((a, n) => a + n, 0);
  const { headTaps, headTapsInverse } = roiLayout(sizes);
  // a cached constant: the backward runs after the forward's own tensors are gone
  const zeros = constant([b, 1], 0);
  type Inputs = { h: tf.Tensor3D; p: VoxelHeadParams };
  const forward = ({ h, p }: Inputs) => {
    const rows = tf.reshape(tf.transpose(tf.reshape(h, [b, r, t, dd]), [0, 2, 1, 3]), [b * t, r * dd]); // [B·T, R·Dd]
    let offset = 0;
    const blocks = p.channelMapper.map(({ weight }, i) => {
      const n = sizes[i] as number;
      const block = tf.pad(weight, [
        [0, 0],
        [offset, k - offset - n],
      ]);
      offset += n;
      return block;
    });
    const wMap = tf.concat(blocks, 0); // [R·Dd, K]
    const y = tf.reshape(linear(rows, wMap, tf.concat(p.channelMapper.map((m) => m.bias))), [b, t, k]); // [B, T, K]
    // u[b, j, tap] = Σ_t w[tap, t]·y[b, t, j]; out[b, j] = Σ_tap u[b, j + tap − 1, tap] inside the ROI
    const yT = tf.reshape(tf.transpose(y, [0, 2, 1]), [b * k, t]); // [B·K, T]
    const u = tf.reshape(
      tf.matMul(yT, tf.reshape(p.decoderPred.weight, [3, t]) as tf.Tensor2D, false, true),
      [b, k * 3],
    );
    const taps = tf.gather(tf.concat([u, zeros], 1), headTaps, 1); // [B, K·3]
    const value = tf.add(tf.sum(tf.reshape(taps, [b, k, 3]), 2), p.decoderPred.bias);
    return { value, saved: { rows, wMap, yT } };
  };
  const backward = (dy: tf.Tensor, s: { rows: tf.Tensor; wMap: tf.Tensor; yT: tf.Tensor }, { p }: Inputs) => {
    // each u entry feeds at most one voxel's window: its gradient is that voxel's
    const du = tf.reshape(tf.gather(tf.concat([dy, zeros], 1), headTapsInverse, 1), [b * k, 3]);
    const dPredW = tf.reshape(tf.matMul(du, s.yT as tf.Tensor2D, true, false), [3, t, 1]);
    const dYT = tf.matMul(du, tf.reshape(p.decoderPred.weight, [3, t]) as tf.Tensor2D); // [B·K, T]
    const dY = tf.reshape(tf.transpose(tf.reshape(dYT, [b, k, t]), [0, 2, 1]), [b * t, k]);
    const dRows = tf.matMul(dY, s.wMap as tf.Tensor2D, false, true); // [B·T, R·Dd]
    const dWMap = tf.matMul(s.rows as tf.Tensor2D, dY, true, false); // [R·Dd, K]: keep each ROI's block
    const dMapB = tf.split(columnSums(dY), sizes);
    let at = 0;
    const channelMapper = sizes.map((n, i) => {
      const weight = tf.slice(dWMap, [i * dd, at], [dd, n]);
      at += n;
      return { weight, bias: dMapB[i] as tf.Tensor };
    });
    return {
      h: tf.reshape(tf.transpose(tf.reshape(dRows, [b, t, r, dd]), [0, 2, 1, 3]), [b, r * t, dd]),
      p: { channelMapper, decoderPred: { weight: dPredW, bias: tf.reshape(tf.sum(dy), [1]) } },
    };
  };
  return runFused({ h, p }, { forward, backward }) as tf.Tensor2D;
}

interface RoiLayout {
  /** [K·3]: for voxel j and tap 0..2, the column of x holding voxel j + tap − 1, or K (a zero column) past its ROI. */
  window: Int32Array;
  /** [K]: the ROI of each voxel. */
  roiOfVoxel: Int32Array;
  /** [K·3]: for voxel j and tap, the entry (j + tap − 1)·3 + tap of the head's u [K·3], or K·3 (zero). */
  headTaps: Int32Array;
  /** [K·3]: for the entry src·3 + tap of u, the voxel j = src − tap + 1 whose window reads it, or K (none). */
  headTapsInverse: Int32Array;
}

const layouts = new Map<string, RoiLayout>();

/** Zero padding at ROI edges: PyTorch's Conv1d(padding=1) runs on each ROI's slice separately. Cached per layout. */
function roiLayout(roiSizes: number[]): RoiLayout {
  const key = roiSizes.join(',');
  const cached = layouts.get(key);
  if (cached) return cached;
  const k = roiSizes.reduce((a, b) => a + b, 0);
  const window = new Int32Array(k * 3);
  const roiOfVoxel = new Int32Array(k);
  const headTaps = new Int32Array(k * 3);
  const headTapsInverse = new Int32Array(k * 3).fill(k);
  let start = 0;
  roiSizes.forEach((n, i) => {
    for (let j = start; j < start + n; j++) {
      roiOfVoxel[j] = i;
      for (let tap = 0; tap < 3; tap++) {
        const src = j + tap - 1;
        const inside = src >= start && src < start + n;
        window[j * 3 + tap] = inside ? src : k;
        headTaps[j * 3 + tap] = inside ? src * 3 + tap : k * 3;
        if (inside) headTapsInverse[src * 3 + tap] = j;
      }
    }
    start += n;
  });
  const layout = { window, roiOfVoxel, headTaps, headTapsInverse };
  layouts.set(key, layout);
  return layout;
}
