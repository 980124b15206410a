/** The paper's GOD sbj_1 autoencoder, as configs/paper/god-sbj_1.yaml and the authors' roi_patch give it
 * (shared by the shape tests and the model benchmark). */
import { fileURLToPath } from 'node:url';
import { loadExperimentConfig } from '../../lib/config/experiment.js';
import { PAPER_ROI_PATCH } from '../../lib/data/common.js';
import type { FmriAeConfig } from '../../lib/models/fmri-autoencoder.js';
import { fmriAeConfig } from '../../lib/train/stages.js';

export function paperAeConfig(): FmriAeConfig {
  const paper = loadExperimentConfig(
    fileURLToPath(new URL('../../configs/paper/god-sbj_1.yaml', import.meta.url)),
  );
  if (paper.pipeline !== 'reproduction')
    throw new Error('configs/paper/god-sbj_1.yaml is not a reproduction config');
  return fmriAeConfig(paper, [...PAPER_ROI_PATCH.god.sbj_1!]);
}
