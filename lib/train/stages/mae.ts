/**
 * Stage 0: MinD-Vis's masked autoencoder on the subject's fMRI rows (train + test when the autoencoder uses
 * test fMRI). The paper reuses MinD-Vis's HCP-pretrained weights; HCP is not part of this project, so a config
 * either trains stage 0 here (training.mae holds loop settings) or imports those weights (training.mae.initFrom).
 */
import { Rng } from '../../compute/rng.js';
import type { ReproductionConfig } from '../../config/reproduction.js';
import { BadInputError } from '../../errors.js';
import { FmriMae, type MaeConfig } from '../../models/mae.js';
import { fmriRows, fmriTask, loadPrepared } from '../data.js';
import type { TrainSettings } from '../loop.js';
import { settingsOf, type TrainableStage } from '../stage.js';

export function maeConfig(cfg: ReproductionConfig): MaeConfig {
  return { ...cfg.models.mae };
}

/** The loop's settings when this config trains stage 0; undefined when it imports it or has none. */
export function maeSettings(cfg: ReproductionConfig): TrainSettings | undefined {
  const s = cfg.training.mae;
  return s && !('initFrom' in s) ? settingsOf(s) : undefined;
}

export const maeStage: TrainableStage = {
  name: 'mae',
  codeVersion: '1',
  data: 'prepared',
  plan({ data, models, training }) {
    if (!training.mae || 'initFrom' in training.mae) return undefined;
    // stage 0 trains on the autoencoder's rows (fmriRows), so the test-row choice is part of its config
    const fmriAe = { includeTestFmri: training.fmriAe.includeTestFmri };
    return {
      earlier: {},
      sections: {
        data: { patchPadding: data.patchPadding },
        models: { mae: models.mae },
        training: { mae: training.mae, fmriAe },
      },
      weights: {},
    };
  },
  settings: maeSettings,
  async setup(cfg, opts) {
    const fmri = fmriRows(await loadPrepared(opts.dataDir, cfg), cfg);
    const settings = maeSettings(cfg);
    if (!settings)
      throw new BadInputError(
        'the config has no training.mae settings: stage 0 is not trained by this config',
      );
    const mc = maeConfig(cfg);
    const mae = new FmriMae(mc, new Rng(cfg.seed, 'mae/init'), cfg.data.patchPadding);
    // x: [b, k] rows → the masked-patch reconstruction loss (masking draws from the loop's stream)
    const task = fmriTask('mae', fmri, mae.params, mc, {
      draw: (x, b, rng) => mae.drawStep(x, b, fmri.k, rng),
      loss: (inputs) => mae.stepLoss(inputs),
    });
    return { task, settings, dispose: () => mae.dispose() };
  },
};
