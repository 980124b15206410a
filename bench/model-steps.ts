/**
 * The training steps of the paper's models as their stages run them (batch, draws, loss, AdamW settings of
 * configs/paper), built at any size: bench/models.ts times them at the paper's, eager and compiled;
 * bench/kernel-counts.ts counts their kernels at reduced widths; bench/fused-ops.ts times them with each fused op
 * and its plain twin; test/compiled-step.test.ts checks compiled against eager at the miniature's.
 */
import * as tf from '@tensorflow/tfjs';
import type { CompileMode } from '../lib/compute/compile-modes.js';
import { Rng } from '../lib/compute/rng.js';
import type { PatchPadding } from '../lib/config/choice-values.js';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import { FmriAutoencoder, dropVoxels, type FmriAeConfig } from '../lib/models/fmri-autoencoder.js';
import type { OpSet } from '../lib/models/fused/index.js';
import type { Params } from '../lib/models/layers.js';
import { FmriMae, type MaeConfig } from '../lib/models/mae.js';
import { MaskGit, type MaskGitConfig } from '../lib/models/maskgit.js';
import { AdamW, type AdamWConfig } from '../lib/train/adamw.js';
import type { TrainTask } from '../lib/train/loop.js';
import { fmriAeConfig } from '../lib/train/stages/fmri-ae.js';
import { maeConfig } from '../lib/train/stages/mae.js';
import { StepRunner } from '../lib/train/step.js';

export interface ModelStep {
  params: Params;
  opt: AdamW;
  /** The stage's task over one fixed batch of examples: each draw is a fresh corruption or masking. */
  task: TrainTask;
  /** One draw's loss (draw then loss, eagerly): what the kernel counts run. */
  loss: () => tf.Scalar;
  /** A training step in `mode` (lib/train/step.ts), as the loop runs it; returns the loss. */
  stepper(mode: CompileMode, lr?: number): () => number;
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

function modelStep(task: TrainTask, opt: AdamW, rng: Rng, tokens: number, dispose: () => void): ModelStep {
  const batch = Int32Array.from({ length: task.examples }, (_, i) => i);
  return {
    params: task.params,
    opt,
    task,
    loss: () => task.loss(task.draw(batch, rng)),
    stepper(mode, lr = 5e-5) {
      const runner = new StepRunner(task, opt, mode);
      const probe = () => {
        const saved = rng.getState();
        try {
          return { inputs: task.draw(batch, rng), lr };
        } finally {
          rng.setState(saved);
        }
      };
      return () => runner.run(task.draw(batch, rng), lr, probe);
    },
    tokens,
    dispose: () => {
      opt.dispose();
      dispose();
    },
  };
}

/** fMRI autoencoder: voxel dropout 0.25 on the input, reconstruction of the clean voxels; clip 0.1. */
export function aeStep(cfg: FmriAeConfig, batch: number, seed = 0, ops?: OpSet): ModelStep {
  const rng = new Rng(seed, 'bench-ae');
  const ae = new FmriAutoencoder(cfg, rng, ops);
  const k = ae.voxels;
  const clean = rng.fillNormal(new Float32Array(batch * k));
  const task: TrainTask<{ input: tf.Tensor2D; target: tf.Tensor2D }> = {
    stage: 'fmri-ae',
    params: ae.params,
    examples: batch,
    model: cfg,
    draw: (_, r) => {
      const input = clean.slice();
      dropVoxels(input, batch, k, 0.25, r);
      return { input: tf.tensor2d(input, [batch, k]), target: tf.tensor2d(clean, [batch, k]) };
    },
    loss: ({ input, target }) => ae.loss(input, target),
  };
  return modelStep(task, new AdamW(ae.params, adamw(0.1)), rng, ae.tokens + 1, () => ae.dispose());
}

/** MinD-Vis's MAE (stage 0): 75 % of the patches masked per sample; clip 0.8 as MinD-Vis's stage-0 config. */
export function maeStep(
  cfg: MaeConfig,
  padding: PatchPadding,
  voxels: number,
  batch: number,
  seed = 0,
  ops?: OpSet,
): ModelStep {
  const rng = new Rng(seed, 'bench-mae');
  const mae = new FmriMae(cfg, rng, padding, ops);
  const x = rng.fillNormal(new Float32Array(batch * voxels));
  const task: TrainTask<ReturnType<FmriMae['drawStep']>> = {
    stage: 'mae',
    params: mae.params,
    examples: batch,
    model: cfg,
    draw: (_, r) => mae.drawStep(x, batch, voxels, r),
    loss: (inputs) => mae.stepLoss(inputs),
  };
  return modelStep(task, new AdamW(mae.params, adamw(0.8)), rng, mae.kept(voxels) + 1, () => mae.dispose());
}

/** MaskGIT: random codes and features, its own masking and dropout; no clipping (grad_clip 0.0). */
export function maskGitStep(cfg: MaskGitConfig, batch: number, seed = 0): ModelStep {
  const rng = new Rng(seed, 'bench-maskgit');
  const mg = new MaskGit(cfg, rng);
  const tokens = Int32Array.from({ length: batch * cfg.length }, () => rng.integer(0, cfg.codes));
  const feats = rng.fillNormal(new Float32Array(batch * cfg.featureDim));
  const task: TrainTask<ReturnType<MaskGit['drawStep']>> = {
    stage: 'maskgit',
    params: mg.params,
    examples: batch,
    model: cfg,
    draw: (_, r) => mg.drawStep(tokens, feats, batch, r),
    loss: (inputs) => mg.stepLoss(inputs),
  };
  return modelStep(task, new AdamW(mg.params, adamw()), rng, cfg.length + 1, () => mg.dispose());
}

const smoke = loadExperimentConfig('configs/smoke.yaml') as ReproductionConfig;
const smokeRois = smoke.data.roiPatch as number[];

/**
 * The miniature's three trained models (configs/smoke.yaml) over one fixed batch, built afresh from `seed`:
 * MaskGIT with 32 codes and features of width 32 over 16 tokens (the smoke tokenizer's grid).
 */
export const SMOKE_STEPS: Record<'mae' | 'fmri-ae' | 'maskgit', (batch: number, seed?: number) => ModelStep> =
  {
    mae: (batch, seed) =>
      maeStep(
        maeConfig(smoke),
        smoke.data.patchPadding,
        smokeRois.reduce((a, b) => a + b, 0),
        batch,
        seed,
      ),
    'fmri-ae': (batch, seed) => aeStep(fmriAeConfig(smoke, smokeRois), batch, seed),
    maskgit: (batch, seed) =>
      maskGitStep({ ...smoke.models.maskgit, codes: 32, length: 16, featureDim: 32 }, batch, seed),
  };
