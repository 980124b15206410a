/** The paper's GOD sbj_1 autoencoder, as configs/paper/god-sbj_1.yaml and the authors' roi_patch give it
 * (shared by the shape tests and the model benchmark). */
import { fileURLToPath } from 'node:url';
import { loadExperimentConfig } from '../../lib/config/experiment.js';
import { PAPER_ROI_PATCH } from '../../lib/data/common.js';
import type { FmriAeConfig } from '../../lib/models/fmri-autoencoder.js';
import type { MaskGitConfig } from '../../lib/models/maskgit.js';
import { fmriAeConfig } from '../../lib/train/stages.js';

export function paperAeConfig(): FmriAeConfig {
  const paper = loadExperimentConfig(
    fileURLToPath(new URL('../../configs/paper/god-sbj_1.yaml', import.meta.url)),
  );
  if (paper.pipeline !== 'reproduction')
    throw new Error('configs/paper/god-sbj_1.yaml is not a reproduction config');
  return fmriAeConfig(paper, [...PAPER_ROI_PATCH.god.sbj_1!]);
}

/** The paper's MaskGIT transformer (spec §2.5): 1024 VQGAN codes + 1000 class slots (mask id 2024), 256 tokens,
 * CLIP's 1024-d conditioning, 24 post-LN blocks of 768 with 16 heads and MLP 3072. */
export function paperMaskGitConfig(): MaskGitConfig {
  return {
    codes: 1024,
    classSlots: 1000,
    length: 256,
    featureDim: 1024,
    width: 768,
    depth: 24,
    heads: 16,
    mlpHidden: 3072,
    dropout: 0.01,
    minMaskRate: 0.5,
    labelSmoothing: 0.1,
    numerics: 'lea-port',
  };
}
