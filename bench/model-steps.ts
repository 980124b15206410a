/**
 * The training steps of the paper's two big models as their stages run them (batch, loss, AdamW settings of
 * configs/paper), built at any size: bench/models.ts times them at the paper's, bench/kernel-counts.ts counts
 * their kernels at reduced widths.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../lib/compute/rng.js';
import { FmriAutoencoder, dropVoxels, type FmriAeConfig } from '../lib/models/fmri-autoencoder.js';
import type { Params } from '../lib/models/layers.js';
import { MaskGit, type MaskGitConfig } from '../lib/models/maskgit.js';
import { AdamW, type AdamWConfig } from '../lib/train/adamw.js';

export interface ModelStep {
  params: Params;
  opt: AdamW;
  /** One batch's loss; every call draws a fresh corruption or masking. */
  loss: () => tf.Scalar;
  /** Sequence length the transformer sees. */
  tokens: number;
  dispose(): void;
}

const adamw = (maxGradNorm?: number): AdamWConfig => ({
  lr: 5e-5,
  betas: [0.9, 0.95],
  eps: 1e-8,
  weightDecay: 0.01,
  ...(maxGradNorm === undefined ? {} : { maxGradNorm }),
});

/** fMRI autoencoder: voxel dropout 0.25 on the input, reconstruction of the clean voxels; clip 0.1. */
export function aeStep(cfg: FmriAeConfig, batch: number): ModelStep {
  const rng = new Rng(0, 'bench-ae');
  const ae = new FmriAutoencoder(cfg, rng);
  const opt = new AdamW(ae.params, adamw(0.1));
  const k = ae.voxels;
  const clean = rng.fillNormal(new Float32Array(batch * k));
  return {
    params: ae.params,
    opt,
    loss: () => {
      const input = clean.slice();
      dropVoxels(input, batch, k, 0.25, rng);
      return ae.loss(tf.tensor2d(input, [batch, k]), tf.tensor2d(clean, [batch, k]));
    },
    tokens: ae.tokens + 1,
    dispose: () => {
      opt.dispose();
      ae.dispose();
    },
  };
}

/** MaskGIT: random codes and features, its own masking and dropout; no clipping (grad_clip 0.0). */
export function maskGitStep(cfg: MaskGitConfig, batch: number): ModelStep {
  const rng = new Rng(0, 'bench-maskgit');
  const mg = new MaskGit(cfg, rng);
  const opt = new AdamW(mg.params, adamw());
  const tokens = Int32Array.from({ length: batch * cfg.length }, () => rng.integer(0, cfg.codes));
  const feats = rng.fillNormal(new Float32Array(batch * cfg.featureDim));
  return {
    params: mg.params,
    opt,
    loss: () => mg.loss(tokens, feats, batch, rng),
    tokens: cfg.length + 1,
    dispose: () => {
      opt.dispose();
      mg.dispose();
    },
  };
}
