/**
 * Stage 1: the fMRI autoencoder on the subject's fMRI rows, denoising (voxels dropped from the input, the clean
 * rows as target), optionally starting from stage 0's weights by name and shape (spec §2.1).
 */
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { Rng } from '../../compute/rng.js';
import type { ReproductionConfig } from '../../config/reproduction.js';
import { BadInputError } from '../../errors.js';
import { FmriAutoencoder, dropVoxels, type FmriAeConfig } from '../../models/fmri-autoencoder.js';
import type { TransferReport } from '../../models/layers.js';
import { loadMaeIntoAutoencoder } from '../../models/mae.js';
import { readWeightsFile } from '../../weights/import.js';
import { fmriRows, fmriTask, loadPrepared } from '../data.js';
import { readModelFile, settingsOf, type StageOptions, type TrainableStage } from '../stage.js';
import { maeSettings } from './mae.js';

export function fmriAeConfig(cfg: ReproductionConfig, roiSizes: number[]): FmriAeConfig {
  const m = cfg.models.fmriAe;
  return {
    roiSizes,
    tokensPerRoi: m.tokensPerRoi,
    width: m.width,
    depth: m.depth,
    heads: m.heads,
    mlpRatio: m.mlpRatio,
    latent: m.latent,
    decoderWidth: m.decoderWidth,
    decoderDepth: m.decoderDepth,
    decoderHeads: m.decoderHeads,
    eps: m.eps,
  };
}

/**
 * Stage 1's starting model, as runStage trains it: the autoencoder's own initialisation, then (initFrom: mae)
 * stage 0's weights by name and shape: MinD-Vis's imported MAE when `weights.mae` is given (training.mae.initFrom),
 * else the mae stage's output in outDir; the same names either way.
 */
export async function initialAutoencoder(
  cfg: ReproductionConfig,
  roiSizes: number[],
  opts: Pick<StageOptions, 'outDir' | 'weights'>,
): Promise<{ model: FmriAutoencoder; transfer?: TransferReport }> {
  const model = new FmriAutoencoder(fmriAeConfig(cfg, roiSizes), new Rng(cfg.seed, 'fmri-ae/init'));
  if (cfg.training.fmriAe.initFrom !== 'mae') return { model };
  try {
    const imported = opts.weights?.mae;
    const mae = imported
      ? (await readWeightsFile(imported, 'mindvis-mae')).tensors
      : await readModelFile(join(opts.outDir, 'mae', 'model.safetensors'), 'mae', 'fmri-ae (initFrom: mae)');
    return { model, transfer: loadMaeIntoAutoencoder(model, mae) };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

export const fmriAeStage: TrainableStage = {
  name: 'fmri-ae',
  // 2: the ROI tokeniser and voxel head as plain per-ROI ops, differentiated by tfjs (float rounding differs)
  codeVersion: '2',
  data: 'prepared',
  plan(cfg, uses) {
    const { models, training } = cfg;
    const fromMae = training.fmriAe.initFrom === 'mae';
    const maeTrained = maeSettings(cfg) !== undefined;
    const maeImported = uses['training.mae.initFrom'];
    if (fromMae && !maeTrained && !maeImported)
      throw new BadInputError('training.fmriAe.initFrom is mae, but training.mae is absent');
    const earlier: Record<string, string> = fromMae && maeTrained ? { mae: 'mae' } : {};
    return {
      earlier,
      sections: { models: { fmriAe: models.fmriAe }, training: { fmriAe: training.fmriAe } },
      weights: { mae: fromMae ? maeImported : undefined },
    };
  },
  settings: (cfg) => settingsOf(cfg.training.fmriAe),
  async setup(cfg, opts) {
    const data = await loadPrepared(opts.dataDir, cfg);
    const fmri = fmriRows(data, cfg);
    const { model: ae, transfer } = await initialAutoencoder(cfg, data.roiSizes, opts);
    if (transfer) {
      const skipped = transfer.notLoaded.map((n) => `${n.name} (${n.reason})`);
      opts.onNotice?.(
        `fmri-ae: loaded ${transfer.loaded.length} tensors from stage 0; kept own init for ${skipped.length}: ${skipped.join(', ')}; ` +
          `unused from stage 0: ${transfer.unused.join(', ') || 'none'}`,
      );
    }
    const rate = cfg.models.fmriAe.voxelDropRate;
    // clean: [b, k] rows; the input is a copy with voxels dropped (from the loop's stream), the target the rows
    const task = fmriTask('fmri-ae', fmri, ae.params, ae.cfg, {
      draw: (clean, b, rng) => {
        const corrupted = clean.slice();
        dropVoxels(corrupted, b, fmri.k, rate, rng);
        return { input: tf.tensor2d(corrupted, [b, fmri.k]), target: tf.tensor2d(clean, [b, fmri.k]) };
      },
      loss: ({ input, target }) => ae.loss(input, target),
    });
    return {
      task,
      settings: settingsOf(cfg.training.fmriAe),
      dispose: () => ae.dispose(),
      ...(transfer ? { transfer } : {}),
    };
  },
};
