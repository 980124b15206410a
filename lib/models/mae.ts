/**
 * Stage 0: MinD-Vis's sparse-coded masked brain modelling (SC-MBM) MAE over voxel patches (spec §2.2;
 * zjc062/mind-vis code/sc_mbm/mae_for_fmri.py MAEforFMRI). Names follow the PyTorch module, so its encoder
 * and decoder blocks load into the fMRI autoencoder by name and shape (loadMaeIntoAutoencoder).
 *
 *   x [B, K] → wrap-pad to K' = L·p (p = 16; PATCH_COUNT) → patches [B, L, p]
 *   patch_embed: Conv1d(1→D, kernel = stride = p) ≡ [B·L, p] @ [p, D] → [B, L, D] + sin-cos positions
 *   keep Lk = int(L·(1−r)) random tokens per sample [B, Lk, D]; prepend CLS [B, Lk+1, D]
 *   pre-LN blocks + LN → decoder_embed [B, Lk+1, Dd]
 *   un-shuffle: kept tokens back at their positions, mask_token elsewhere [B, L+1, Dd] + positions
 *   pre-LN blocks + LN → decoder_pred Linear(Dd→p) → drop CLS [B, L, p]
 *   loss: mean squared error over the masked patches only
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../compute/rng.js';
import type { PatchPadding } from '../config/choice-values.js';
import type { NdArray } from '../tensors/ndarray.js';
import { FmriAutoencoder } from './fmri-autoencoder.js';
import { OP_SETS, type OpSet } from './fused/index.js';
import {
  ParamBuilder,
  disposeParams,
  linear,
  param,
  sincosPositions,
  transferByNameAndShape,
  type Params,
  type TransferReport,
} from './layers.js';
import { encoderDecoderConfigs, encoderForward, initEncoder, type EncoderConfig } from './transformer.js';

export interface MaeConfig {
  /** Voxels per patch (16). */
  patchSize: number;
  width: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  decoderWidth: number;
  decoderDepth: number;
  decoderHeads: number;
  /** Fraction of patches hidden from the encoder (0.75). */
  maskRatio: number;
  eps: number;
}

/** A masking's row indices (FmriMae.masking), int32 tensors. */
export interface MaeMasking {
  keptRows: tf.Tensor1D;
  decoderRows: tf.Tensor1D;
  maskedRows: tf.Tensor1D;
}

/**
 * Patches per row of K voxels, by data.patchPadding. mindvis: MinD-Vis's pad_to_patch_size pads
 * p − K mod p voxels, a whole patch when p divides K. minimal: up to the next multiple of p only.
 */
const PATCH_COUNT: Record<PatchPadding, (k: number, p: number) => number> = {
  mindvis: (k, p) => Math.floor(k / p) + 1,
  minimal: (k, p) => Math.ceil(k / p),
};

export class FmriMae {
  readonly params: Params;
  private readonly encoder: EncoderConfig;
  private readonly decoder: EncoderConfig;
  private readonly positions = new Map<number, { enc: tf.Tensor2D; dec: tf.Tensor2D }>();

  constructor(
    readonly cfg: MaeConfig,
    rng: Rng,
    /** How a row is padded to whole patches (data.patchPadding): no parameter depends on it. */
    readonly padding: PatchPadding,
    /** The fused ops or their plain twins (the bench times both). */
    private readonly ops: OpSet = OP_SETS.fused,
  ) {
    const { patchSize: p, width: d, decoderWidth: dd } = cfg;
    ({ encoder: this.encoder, decoder: this.decoder } = encoderDecoderConfigs(cfg));
    const b = new ParamBuilder(rng);
    // MinD-Vis first xavier-initialises the patch conv, then its _init_weights pass re-draws every Conv1d from
    // N(0, 0.02); the later draw is the one that stands.
    b.normal('patch_embed.proj.weight', [p, 1, d], 0.02);
    b.zeros('patch_embed.proj.bias', [d]);
    b.normal('cls_token', [1, 1, d], 0.02);
    b.merge(initEncoder(this.encoder, rng));
    b.xavier('decoder_embed.weight', [d, dd]);
    b.zeros('decoder_embed.bias', [dd]);
    b.normal('mask_token', [1, 1, dd], 0.02);
    b.merge(initEncoder(this.decoder, rng, 'decoder_'));
    b.xavier('decoder_pred.weight', [dd, p]);
    b.zeros('decoder_pred.bias', [p]);
    this.params = b.params;
  }

  /** Patches per sample for K voxels after wrap-padding. */
  patches(k: number): number {
    return PATCH_COUNT[this.padding](k, this.cfg.patchSize);
  }

  /** Kept (visible) patches per sample: MinD-Vis's int(L·(1 − mask_ratio)). */
  kept(k: number): number {
    return Math.floor(this.patches(k) * (1 - this.cfg.maskRatio));
  }

  /** Sin-cos tables without the CLS row, per patch count (built once each). */
  private tables(l: number): { enc: tf.Tensor2D; dec: tf.Tensor2D } {
    let t = this.positions.get(l);
    if (!t) {
      const { width: d, decoderWidth: dd } = this.cfg;
      // kept: the first call may come from inside a tf.tidy
      t = {
        enc: tf.keep(tf.tensor2d(sincosPositions(d, l).subarray(d), [l, d])),
        dec: tf.keep(tf.tensor2d(sincosPositions(dd, l).subarray(dd), [l, dd])),
      };
      this.positions.set(l, t);
    }
    return t;
  }

  /** x [B, K] → wrap-padded patches [B, L, p] (np.pad mode 'wrap': the first voxels repeat at the end). */
  patchify(x: tf.Tensor2D): tf.Tensor3D {
    const [b, k] = x.shape;
    const p = this.cfg.patchSize;
    const l = this.patches(k);
    const padded = l * p === k ? x : tf.concat([x, tf.slice(x, [0, 0], [b, l * p - k])], 1);
    return tf.reshape(padded, [b, l, p]);
  }

  /**
   * Where each row comes from under a masking: `keep` [B·Lk] holds, per sample, the patch indices the encoder
   * sees (Lk = kept(K)); the rest are masked. Host arithmetic on the draw, so a training step's tensor part reads
   * these as inputs: keptRows [B·Lk] (rows of the [B·L] patch embeddings), decoderRows [B·L] (rows of the
   * [B·Lk + 1] decoder tokens, index B·Lk being the mask token) and maskedRows (rows of [B·L] the loss covers).
   */
  masking(keep: Int32Array, b: number, k: number): MaeMasking {
    const l = this.patches(k);
    const lk = keep.length / b;
    if (!Number.isInteger(lk) || lk > l)
      throw new RangeError(`keep holds ${keep.length} indices for ${b}x${l} patches`);
    const keptRows = new Int32Array(b * lk);
    const decoderRows = new Int32Array(b * l).fill(b * lk);
    const maskedRows: number[] = [];
    for (let s = 0; s < b; s++) {
      const seen = new Uint8Array(l);
      for (let j = 0; j < lk; j++) {
        const patch = keep[s * lk + j] as number;
        keptRows[s * lk + j] = s * l + patch;
        decoderRows[s * l + patch] = s * lk + j;
        seen[patch] = 1;
      }
      for (let q = 0; q < l; q++) if (!seen[q]) maskedRows.push(s * l + q);
    }
    return {
      keptRows: tf.tensor1d(keptRows, 'int32'),
      decoderRows: tf.tensor1d(decoderRows, 'int32'),
      maskedRows: tf.tensor1d(Int32Array.from(maskedRows), 'int32'),
    };
  }

  /**
   * The encoder over the kept patches: x [B, K], `keep` [B·Lk] patch indices per sample (all L of them, in order,
   * for unmasked latents). Returns the latents [B, Lk+1, D] (CLS first) and the patches [B, L, p].
   */
  encode(x: tf.Tensor2D, keep: Int32Array): { latents: tf.Tensor3D; patches: tf.Tensor3D } {
    const [b, k] = x.shape;
    return this.encodeRows(x, this.masking(keep, b, k).keptRows);
  }

  /** encode() with the kept rows [B·Lk] as a tensor (masking().keptRows). */
  private encodeRows(x: tf.Tensor2D, keptRows: tf.Tensor1D): { latents: tf.Tensor3D; patches: tf.Tensor3D } {
    const [b, k] = x.shape;
    const { patchSize: p, width: d } = this.cfg;
    const l = this.patches(k);
    const lk = keptRows.shape[0] / b;
    const patches = this.patchify(x);
    const w = tf.reshape(param(this.params, 'patch_embed.proj.weight'), [p, d]);
    const emb = tf.reshape(
      tf.add(
        tf.reshape(linear(tf.reshape(patches, [b * l, p]), w, param(this.params, 'patch_embed.proj.bias')), [
          b,
          l,
          d,
        ]),
        this.tables(l).enc,
      ),
      [b * l, d],
    );
    const visible = tf.reshape(tf.gather(emb, keptRows), [b, lk, d]);
    const cls = tf.broadcastTo(param(this.params, 'cls_token'), [b, 1, d]); // not tile: see fmri-autoencoder.ts
    const latents = encoderForward(
      this.params,
      this.encoder,
      tf.concat([cls, visible], 1) as tf.Tensor3D,
      '',
      this.ops,
    );
    return { latents, patches };
  }

  /**
   * One masked-modelling pass. x [B, K]; `keep` [B·Lk] holds, per sample, the patch indices the encoder sees
   * (Lk = kept(K)), the rest are masked. Returns the loss and the predictions [B, L, p].
   */
  forward(x: tf.Tensor2D, keep: Int32Array): { loss: tf.Scalar; pred: tf.Tensor3D } {
    const [b, k] = x.shape;
    if (keep.length !== b * this.kept(k))
      throw new RangeError(`keep holds ${keep.length} indices, expected ${b}x${this.kept(k)}`);
    return this.forwardMasked(x, this.masking(keep, b, k));
  }

  /** forward() under a masking() of the host's: pure tensor code, a training step's tensor part. */
  forwardMasked(x: tf.Tensor2D, m: MaeMasking): { loss: tf.Scalar; pred: tf.Tensor3D } {
    const [b, k] = x.shape;
    const { patchSize: p, width: d, decoderWidth: dd } = this.cfg;
    const l = this.patches(k);
    const lk = m.keptRows.shape[0] / b;
    const pos = this.tables(l);
    const { latents: h, patches } = this.encodeRows(x, m.keptRows); // [B, Lk+1, D]
    const e = tf.reshape(
      linear(
        tf.reshape(h, [b * (lk + 1), d]),
        param(this.params, 'decoder_embed.weight'),
        param(this.params, 'decoder_embed.bias'),
      ),
      [b, lk + 1, dd],
    );
    const tokens = tf.concat([
      tf.reshape(tf.slice(e, [0, 1, 0], [b, lk, dd]), [b * lk, dd]),
      tf.reshape(param(this.params, 'mask_token'), [1, dd]),
    ]);
    const slots = tf.add(tf.reshape(tf.gather(tokens, m.decoderRows), [b, l, dd]), pos.dec); // [B, L, Dd]
    const g = encoderForward(
      this.params,
      this.decoder,
      tf.concat([tf.slice(e, [0, 0, 0], [b, 1, dd]), slots], 1) as tf.Tensor3D,
      'decoder_',
      this.ops,
    );
    const pred = tf.reshape(
      linear(
        tf.reshape(tf.slice(g, [0, 1, 0], [b, l, dd]), [b * l, dd]),
        param(this.params, 'decoder_pred.weight'),
        param(this.params, 'decoder_pred.bias'),
      ),
      [b, l, p],
    );
    const loss = tf.mean(
      tf.squaredDifference(
        tf.gather(tf.reshape(pred, [b * l, p]), m.maskedRows),
        tf.gather(tf.reshape(patches, [b * l, p]), m.maskedRows),
      ),
    );
    return { loss: loss as tf.Scalar, pred: pred as tf.Tensor3D };
  }

  /** MinD-Vis random_masking: per sample, a random permutation whose first Lk entries are kept. */
  drawKeep(batch: number, k: number, rng: Rng): Int32Array {
    const l = this.patches(k);
    const lk = this.kept(k);
    const keep = new Int32Array(batch * lk);
    for (let s = 0; s < batch; s++) keep.set(rng.permutation(l).subarray(0, lk), s * lk);
    return keep;
  }

  /** A training step's host part: rows x [B, K] and the masking drawn from `rng`. */
  drawStep(x: Float32Array, b: number, k: number, rng: Rng): { x: tf.Tensor2D } & MaeMasking {
    return { x: tf.tensor2d(x, [b, k]), ...this.masking(this.drawKeep(b, k, rng), b, k) };
  }

  /** A training step's tensor part: the loss of drawStep's inputs. */
  stepLoss(inputs: { x: tf.Tensor2D } & MaeMasking): tf.Scalar {
    return this.forwardMasked(inputs.x, inputs).loss;
  }

  loss(x: tf.Tensor2D, rng: Rng): tf.Scalar {
    return this.forward(x, this.drawKeep(x.shape[0], x.shape[1], rng)).loss;
  }

  dispose(): void {
    disposeParams(this.params);
    for (const t of this.positions.values()) tf.dispose([t.enc, t.dec]);
    this.positions.clear();
  }
}

/**
 * Loads stage-0 weights into the autoencoder the way the authors' non-strict loader does (spec §2.1): every
 * tensor whose name and shape match is copied; the report lists the autoencoder parameters that kept their
 * own initialisation (ROI embedding, pred, channel_mapper, decoder_pred, and decoder_embed when the latent
 * width differs from the MAE width) and the MAE tensors nothing took (patch_embed.proj, decoder_pred).
 */
export function loadMaeIntoAutoencoder(ae: FmriAutoencoder, mae: Map<string, NdArray>): TransferReport {
  return transferByNameAndShape(ae.params, mae);
}
