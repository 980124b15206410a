/**
 * LEA's fMRI autoencoder (spec §2.1; naiq/LEA src/transformer_layers.py fMRI_Autoencoder): an ROI tokeniser,
 * a pre-LN ViT encoder whose CLS output becomes one latent vector, and a decoder that rebuilds the voxels
 * from that vector alone (mask tokens + positions, no encoder tokens). Names follow the PyTorch module.
 *
 *   x [B, K] ─ split into R ROIs of n_i voxels
 *     ROI i: Conv1d(1→T, k3, pad 1) [B, n_i, T] → transpose [B, T, n_i] → Linear(n_i→D) [B, T, D]
 *   concat [B, N = R·T, D] + sin-cos positions; prepend CLS [B, N+1, D]
 *   pre-LN blocks + LN [B, N+1, D] → CLS row [B, D] → pred: Linear(D→latent) = z [B, latent]
 *   decoder_embed(z) [B, 1, Dd]; append N mask tokens; + positions [B, N+1, Dd]
 *   pre-LN blocks + LN → drop CLS → R runs of T tokens
 *     ROI i: Linear(Dd→n_i) [B, T, n_i] → shared Conv1d(T→1, k3, pad 1) [B, n_i] ; concat → [B, K]
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../compute/rng.js';
import {
  ParamBuilder,
  columnSums,
  disposeParams,
  linear,
  param,
  sampleWithoutReplacement,
  sincosPositions,
  type Params,
} from './layers.js';
import { encoderDecoderConfigs, encoderForward, initEncoder, type EncoderConfig } from './transformer.js';

export interface FmriAeConfig {
  /** Voxels per ROI, in order; they sum to K. */
  roiSizes: number[];
  /** Tokens per ROI (the authors' `patch_size`, 32). */
  tokensPerRoi: number;
  width: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /** Width of the latent (1024, CLIP's width). */
  latent: number;
  decoderWidth: number;
  decoderDepth: number;
  decoderHeads: number;
  /** Layer-norm epsilon (timm's nn.LayerNorm default). */
  eps: number;
}

export class FmriAutoencoder {
  readonly params: Params;
  readonly voxels: number;
  private readonly encoder: EncoderConfig;
  private readonly decoder: EncoderConfig;
  /** Fixed sin-cos tables without the CLS row (which is zero): [N, D] and [N, Dd]. */
  private readonly pos: tf.Tensor2D;
  private readonly decoderPos: tf.Tensor2D;
  /** Index tables of the ROI layout (see roiLayout). */
  private readonly layout: RoiLayout;
  /**
   * Per batch size: zeros [B, 1, D] and the decoder positions repeated [B, N, Dd], so the CLS and mask tokens
   * broadcast over the batch in an Add, whose gradient is one Sum whatever the batch (tfjs runs broadcastTo as
   * Tile, whose gradient is a Slice and an Add per example).
   */
  private readonly perBatch = new Map<number, BatchConstants>();

  constructor(
    readonly cfg: FmriAeConfig,
    rng: Rng,
  ) {
    const { roiSizes, tokensPerRoi: t, width: d, latent, decoderWidth: dd } = cfg;
    this.voxels = roiSizes.reduce((a, b) => a + b, 0);
    ({ encoder: this.encoder, decoder: this.decoder } = encoderDecoderConfigs(cfg));
    const p = new ParamBuilder(rng);
    // init as the authors' initialize_weights: Conv1d N(0, 0.02), Linear xavier-uniform, biases 0, tokens N(0, 0.02)
    roiSizes.forEach((n, i) => {
      p.normal(`patch_embed.layers.${i}.0.weight`, [3, 1, t], 0.02);
      p.zeros(`patch_embed.layers.${i}.0.bias`, [t]);
      p.xavier(`patch_embed.layers.${i}.1.weight`, [n, d]);
      p.zeros(`patch_embed.layers.${i}.1.bias`, [d]);
    });
    p.normal('cls_token', [1, 1, d], 0.02);
    p.merge(initEncoder(this.encoder, rng));
    p.xavier('pred.weight', [d, latent]);
    p.zeros('pred.bias', [latent]);
    p.xavier('decoder_embed.weight', [latent, dd]);
    p.zeros('decoder_embed.bias', [dd]);
    p.normal('mask_token', [1, 1, dd], 0.02);
    p.merge(initEncoder(this.decoder, rng, 'decoder_'));
    roiSizes.forEach((n, i) => {
      p.xavier(`channel_mapper.${i}.0.weight`, [dd, n]);
      p.zeros(`channel_mapper.${i}.0.bias`, [n]);
    });
    p.normal('decoder_pred.weight', [3, t, 1], 0.02);
    p.zeros('decoder_pred.bias', [1]);
    this.params = p.params;
    const tokens = roiSizes.length * t;
    this.pos = tf.tensor2d(sincosPositions(d, tokens).subarray(d), [tokens, d]);
    this.decoderPos = tf.tensor2d(sincosPositions(dd, tokens).subarray(dd), [tokens, dd]);
    this.layout = roiLayout(roiSizes);
  }

  private batchConstants(b: number): BatchConstants {
    let k = this.perBatch.get(b);
    if (!k) {
      const { width: d, decoderWidth: dd } = this.cfg;
      k = {
        zeros: tf.keep(tf.zeros([b, 1, d])),
        column: tf.keep(tf.zeros([b, 1])),
        decoderPos: tf.keep(
          tf.tidy(() => tf.tile(tf.reshape(this.decoderPos, [1, this.tokens, dd]), [b, 1, 1])),
        ),
      };
      this.perBatch.set(b, k);
    }
    return k;
  }

  get tokens(): number {
    return this.cfg.roiSizes.length * this.cfg.tokensPerRoi;
  }

  /**
   * ROI tokeniser: x [B, K] → [B, N, D] (positions not yet added). Written for few ops, not per ROI (tfjs
   * dispatch cost dominates small models): each voxel's 3-tap window within its ROI is gathered once
   * [B, K, 3], every voxel uses its ROI's kernel [K, 3, T], and the R Linear layers run as one matmul with a
   * block-diagonal [K, R·D] weight (R times the FLOPs of separate matmuls: ~3% of a paper-size step). One
   * differentiable op over the parameters with a hand-written backward (about 25 kernels against ~100 for
   * autodiff of the same forward); x is data, not differentiated.
   */
  embedRois(x: tf.Tensor2D): tf.Tensor3D {
    const [b, k] = x.shape;
    const { roiSizes, tokensPerRoi: t, width: d } = this.cfg;
    const r = roiSizes.length;
    const { window, roiOfVoxel } = this.layout;
    const x3 = tf.reshape(tf.gather(tf.concat([x, this.batchConstants(b).column], 1), window, 1), [b, k, 3]);
    const names = (suffix: string) => roiSizes.map((_, i) => `patch_embed.layers.${i}.${suffix}`);
    const inputs = ['0.weight', '0.bias', '1.weight', '1.bias']
      .flatMap(names)
      .map((n) => param(this.params, n));
    const tokenise = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const save = args[4 * r] as tf.GradSaveFunc;
      const ps = args.slice(0, 4 * r) as tf.Tensor[];
      const [convW, convB, linW, linB] = [0, 1, 2, 3].map((j) => ps.slice(j * r, (j + 1) * r));
      const kernels = tf.gather(tf.reshape(tf.stack(convW as tf.Tensor[]), [r, 3, t]), roiOfVoxel); // [K, 3, T]
      const biases = tf.gather(tf.stack(convB as tf.Tensor[]), roiOfVoxel); // [K, T]
      const conv = tf.add(tf.einsum('bks,kst->bkt', x3, kernels), biases); // [B, K, T]
      const rows = tf.reshape(tf.transpose(conv, [0, 2, 1]), [b * t, k]); // [B·T, K]
      const w = tf.concat(
        (linW as tf.Tensor[]).map((wi, i) =>
          tf.pad(wi, [
            [0, 0],
            [i * d, (r - 1 - i) * d],
          ]),
        ),
        0,
      ); // [K, R·D] block-diagonal
      const y = linear(rows, w, tf.concat(linB as tf.Tensor[])); // [B·T, R·D]
      save([x3, rows, w]);
      return {
        value: tf.reshape(tf.transpose(tf.reshape(y, [b, t, r, d]), [0, 2, 1, 3]), [b, r * t, d]),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const [x3S, rowsS, wS] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
            const dY = tf.reshape(tf.transpose(tf.reshape(dy, [b, r, t, d]), [0, 2, 1, 3]), [b * t, r * d]);
            const dW = tf.matMul(rowsS, dY as tf.Tensor2D, true, false); // [K, R·D]: keep each ROI's block
            let offset = 0;
            const dLinW = roiSizes.map((n, i) => {
              const block = tf.slice(dW, [offset, i * d], [n, d]);
              offset += n;
              return block;
            });
            const dLinB = tf.split(columnSums(dY), r);
            const dConv = tf.transpose(
              tf.reshape(tf.matMul(dY as tf.Tensor2D, wS, false, true), [b, t, k]),
              [0, 2, 1],
            ); // [B, K, T]
            // per voxel, then summed over each ROI's voxels
            const dKernels = tf.unsortedSegmentSum(tf.einsum('bks,bkt->kst', x3S, dConv), roiOfVoxel, r); // [R, 3, T]
            const dBiases = tf.unsortedSegmentSum(tf.sum(dConv, 0), roiOfVoxel, r); // [R, T]
            return [
              ...tf.unstack(tf.reshape(dKernels, [r, 3, 1, t])),
              ...tf.unstack(dBiases),
              ...dLinW,
              ...dLinB,
            ];
          }),
      };
    });
    return tokenise(...inputs) as tf.Tensor3D;
  }

  /**
   * Decoder head: tokens [B, N, Dd] (CLS dropped) → voxels [B, K]. The R Linear(Dd→n_i) layers run as one
   * matmul with a block-diagonal [R·Dd, K] weight; the shared Conv1d(T→1, k3) is a [T, 3] matmul followed by
   * summing each voxel's 3-tap window within its ROI. One differentiable op with a hand-written backward.
   */
  voxelHead(h: tf.Tensor3D): tf.Tensor2D {
    const [b, , dd] = h.shape;
    const { roiSizes, tokensPerRoi: t } = this.cfg;
    const r = roiSizes.length;
    const k = this.voxels;
    const { headTaps, headTapsInverse } = this.layout;
    // a cached constant: the backward runs after the forward's own tensors are gone
    const zeros = this.batchConstants(b).column;
    const mapW = roiSizes.map((_, i) => param(this.params, `channel_mapper.${i}.0.weight`));
    const mapB = roiSizes.map((_, i) => param(this.params, `channel_mapper.${i}.0.bias`));
    const predW = param(this.params, 'decoder_pred.weight');
    const predB = param(this.params, 'decoder_pred.bias');
    const head = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const x = args[0] as tf.Tensor3D;
      const save = args[2 * r + 3] as tf.GradSaveFunc;
      const rows = tf.reshape(tf.transpose(tf.reshape(x, [b, r, t, dd]), [0, 2, 1, 3]), [b * t, r * dd]); // [B·T, R·Dd]
      let offset = 0;
      const blocks = roiSizes.map((n, i) => {
        const block = tf.pad(mapW[i] as tf.Tensor, [
          [0, 0],
          [offset, k - offset - n],
        ]);
        offset += n;
        return block;
      });
      const wMap = tf.concat(blocks, 0); // [R·Dd, K]
      const y = tf.reshape(linear(rows, wMap, tf.concat(mapB)), [b, t, k]); // [B, T, K]
      // u[b, j, tap] = Σ_t w[tap, t]·y[b, t, j]; out[b, j] = Σ_tap u[b, j + tap − 1, tap] inside the ROI
      const w = tf.reshape(predW, [3, t]);
      const yT = tf.reshape(tf.transpose(y, [0, 2, 1]), [b * k, t]); // [B·K, T]
      const u = tf.reshape(tf.matMul(yT, w, false, true), [b, k * 3]);
      const taps = tf.gather(tf.concat([u, zeros], 1), headTaps, 1); // [B, K·3]
      save([rows, wMap, yT]);
      return {
        value: tf.add(tf.sum(tf.reshape(taps, [b, k, 3]), 2), predB),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const [rowsS, wMapS, yTS] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
            // each u entry feeds at most one voxel's window: its gradient is that voxel's
            const du = tf.reshape(tf.gather(tf.concat([dy, zeros], 1), headTapsInverse, 1), [b * k, 3]);
            const dPredW = tf.reshape(tf.matMul(du, yTS, true, false), [3, t, 1]);
            const dYT = tf.matMul(du, tf.reshape(predW, [3, t]) as tf.Tensor2D); // [B·K, T]
            const dY = tf.reshape(tf.transpose(tf.reshape(dYT, [b, k, t]), [0, 2, 1]), [b * t, k]);
            const dRows = tf.matMul(dY, wMapS, false, true); // [B·T, R·Dd]
            const dWMap = tf.matMul(rowsS, dY, true, false); // [R·Dd, K]: keep each ROI's block
            let at = 0;
            const dMapW = roiSizes.map((n, i) => {
              const block = tf.slice(dWMap, [i * dd, at], [dd, n]);
              at += n;
              return block;
            });
            return [
              tf.reshape(tf.transpose(tf.reshape(dRows, [b, t, r, dd]), [0, 2, 1, 3]), [b, r * t, dd]),
              ...dMapW,
              ...tf.split(columnSums(dY), roiSizes),
              dPredW,
              tf.reshape(tf.sum(dy), [1]),
            ];
          }),
      };
    });
    return head(h, ...mapW, ...mapB, predW, predB) as tf.Tensor2D;
  }

  /** x [B, K] → latent z [B, latent]. */
  encode(x: tf.Tensor2D): tf.Tensor2D {
    const [b] = x.shape;
    const d = this.cfg.width;
    const tokens = tf.add(this.embedRois(x), this.pos); // [B, N, D]
    const cls = tf.add(param(this.params, 'cls_token'), this.batchConstants(b).zeros); // CLS position is the zero row
    const h = encoderForward(this.params, this.encoder, tf.concat([cls, tokens], 1) as tf.Tensor3D);
    const clsOut = tf.reshape(tf.slice(h, [0, 0, 0], [b, 1, d]), [b, d]);
    return linear(clsOut, param(this.params, 'pred.weight'), param(this.params, 'pred.bias'));
  }

  /** z [B, latent] → voxels [B, K]. */
  decode(z: tf.Tensor2D): tf.Tensor2D {
    const [b] = z.shape;
    const dd = this.cfg.decoderWidth;
    const n = this.tokens;
    const first = tf.reshape(
      linear(z, param(this.params, 'decoder_embed.weight'), param(this.params, 'decoder_embed.bias')),
      [b, 1, dd],
    );
    const masks = tf.add(param(this.params, 'mask_token'), this.batchConstants(b).decoderPos); // [B, N, Dd]
    const h = encoderForward(
      this.params,
      this.decoder,
      tf.concat([first, masks], 1) as tf.Tensor3D,
      'decoder_',
    );
    return this.voxelHead(tf.slice(h, [0, 1, 0], [b, n, dd]));
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return this.decode(this.encode(x));
  }

  /** Mean squared reconstruction error of the clean voxels from the (corrupted) input. */
  loss(input: tf.Tensor2D, target: tf.Tensor2D): tf.Scalar {
    return tf.mean(tf.squaredDifference(this.forward(input), target));
  }

  dispose(): void {
    disposeParams(this.params);
    this.pos.dispose();
    this.decoderPos.dispose();
    for (const k of this.perBatch.values()) tf.dispose([k.zeros, k.column, k.decoderPos]);
  }
}

/** Constants of one batch size (FmriAutoencoder.batchConstants). */
interface BatchConstants {
  /** [B, 1, D]: the CLS token broadcasts over the batch by adding these. */
  zeros: tf.Tensor3D;
  /** [B, 1]: the zero column that padded windows read. */
  column: tf.Tensor2D;
  /** [B, N, Dd]: the decoder's positions for every example. */
  decoderPos: tf.Tensor3D;
}

interface RoiLayout {
  /** [K·3]: for voxel j and tap 0..2, the column of x holding voxel j + tap − 1, or K (a zero column) past its ROI. */
  window: Int32Array;
  /** [K]: the ROI of each voxel. */
  roiOfVoxel: Int32Array;
  /** [K·3]: for voxel j and tap, the entry (j + tap − 1)·3 + tap of the decoder's u [K·3], or K·3 (zero). */
  headTaps: Int32Array;
  /** [K·3]: for the entry src·3 + tap of u, the voxel j = src − tap + 1 whose window reads it, or K (none). */
  headTapsInverse: Int32Array;
}

/** Zero padding at ROI edges: PyTorch's Conv1d(padding=1) runs on each ROI's slice separately. */
function roiLayout(roiSizes: number[]): RoiLayout {
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
  return { window, roiOfVoxel, headTaps, headTapsInverse };
}

/**
 * Voxel-dropout corruption (spec §2.1, the authors' `fmri_drop_rate`): in each row of x [rows, K] (in place),
 * ⌊rate·K⌋ distinct voxels drawn uniformly are set to 0, per row: LEA's src/dataset.py fmri_transform, which
 * zeroes np.random.choice(K, int(K·drop_rate), replace=False) of each sample as the dataset yields it.
 */
export function dropVoxels(x: Float32Array, rows: number, k: number, rate: number, rng: Rng): void {
  const count = Math.floor(rate * k);
  if (count === 0) return;
  const scratch = new Int32Array(k);
  for (let r = 0; r < rows; r++) {
    for (const j of sampleWithoutReplacement(rng, k, count, scratch)) x[r * k + j] = 0;
  }
}
