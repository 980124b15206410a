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
import { OP_SETS, type OpSet } from './fused/index.js';
import {
  ParamBuilder,
  disposeParams,
  linear,
  param,
  sampleWithoutReplacement,
  sincosPositions,
  weightBias,
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
  /**
   * Per batch size: zeros [B, 1, D] and the decoder positions repeated [B, N, Dd], so the CLS and mask tokens
   * broadcast over the batch in an Add, whose gradient is one Sum whatever the batch (tfjs runs broadcastTo as
   * Tile, whose gradient is a Slice and an Add per example).
   */
  private readonly perBatch = new Map<number, BatchConstants>();

  constructor(
    readonly cfg: FmriAeConfig,
    rng: Rng,
    /** The encoder blocks' fused ops or their plain twins (the bench times both). */
    private readonly ops: OpSet = OP_SETS.fused,
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
  }

  private batchConstants(b: number): BatchConstants {
    let k = this.perBatch.get(b);
    if (!k) {
      const { width: d, decoderWidth: dd } = this.cfg;
      k = {
        zeros: tf.keep(tf.zeros([b, 1, d])),
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

  /** ROI tokeniser: x [B, K] → [B, N = R·T, D], positions not yet added; each ROI as the PyTorch modules run it. */
  embedRois(x: tf.Tensor2D): tf.Tensor3D {
    const [b] = x.shape;
    const { tokensPerRoi: t, width: d } = this.cfg;
    let start = 0;
    const rois = this.cfg.roiSizes.map((n, i) => {
      const conv = weightBias(this.params, `patch_embed.layers.${i}.0`);
      const lin = weightBias(this.params, `patch_embed.layers.${i}.1`);
      const xi = tf.reshape(tf.slice(x, [0, start], [b, n]), [b, n, 1]) as tf.Tensor3D;
      start += n;
      const y = tf.add(tf.conv1d(xi, conv.weight as tf.Tensor3D, 1, 'same'), conv.bias); // Conv1d(1→T) [B, n, T]
      const rows = tf.reshape(tf.transpose(y, [0, 2, 1]), [b * t, n]); // [B·T, n]
      return tf.reshape(linear(rows, lin.weight, lin.bias), [b, t, d]); // Linear(n→D) [B, T, D]
    });
    return tf.concat(rois, 1) as tf.Tensor3D;
  }

  /** Decoder head: tokens [B, N, Dd] (CLS dropped) → voxels [B, K], ROI by ROI. */
  voxelHead(h: tf.Tensor3D): tf.Tensor2D {
    const [b, , dd] = h.shape;
    const t = this.cfg.tokensPerRoi;
    const pred = weightBias(this.params, 'decoder_pred');
    const rois = this.cfg.roiSizes.map((n, i) => {
      const mapper = weightBias(this.params, `channel_mapper.${i}.0`);
      const hi = tf.reshape(tf.slice(h, [0, i * t, 0], [b, t, dd]), [b * t, dd]);
      const y = tf.reshape(linear(hi, mapper.weight, mapper.bias), [b, t, n]); // Linear(Dd→n) [B, T, n]
      // the shared Conv1d(T→1, k3, pad 1) over the ROI's voxels: [B, n, T] → [B, n, 1]
      const conv = tf.conv1d(
        tf.transpose(y, [0, 2, 1]) as tf.Tensor3D,
        pred.weight as tf.Tensor3D,
        1,
        'same',
      );
      return tf.reshape(tf.add(conv, pred.bias), [b, n]);
    });
    return tf.concat(rois, 1) as tf.Tensor2D;
  }

  /** x [B, K] → latent z [B, latent]. */
  encode(x: tf.Tensor2D): tf.Tensor2D {
    const [b] = x.shape;
    const d = this.cfg.width;
    const tokens = tf.add(this.embedRois(x), this.pos); // [B, N, D]
    const cls = tf.add(param(this.params, 'cls_token'), this.batchConstants(b).zeros); // CLS position is the zero row
    const h = encoderForward(
      this.params,
      this.encoder,
      tf.concat([cls, tokens], 1) as tf.Tensor3D,
      '',
      this.ops,
    );
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
      this.ops,
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
    for (const k of this.perBatch.values()) tf.dispose([k.zeros, k.decoderPos]);
  }
}

/** Constants of one batch size (FmriAutoencoder.batchConstants). */
interface BatchConstants {
  /** [B, 1, D]: the CLS token broadcasts over the batch by adding these. */
  zeros: tf.Tensor3D;
  /** [B, N, Dd]: the decoder's positions for every example. */
  decoderPos: tf.Tensor3D;
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
