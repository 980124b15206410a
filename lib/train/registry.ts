/**
 * Every trainable stage, one entry each (the definitions are lib/train/stages/*.ts). The stage runner
 * (lib/train/stages.ts), the plan (lib/pipeline/plan.ts), the dry-run estimate and the stage activities read
 * this table; a new stage is one file there and one entry here (its name also goes in STAGES, the config's list).
 * The order is the plan's: within each data side, a stage comes after the stages whose model it reads.
 */
import type { Stage } from '../config/reproduction.js';
import type { TrainableStage } from './stage.js';
import { fmriAeStage } from './stages/fmri-ae.js';
import { maeStage } from './stages/mae.js';
import { maskgitStage } from './stages/maskgit.js';
import { tokenizerStage } from './stages/tokenizer.js';

export const TRAINABLE_STAGES: Readonly<Record<Stage, TrainableStage>> = {
  mae: maeStage,
  'fmri-ae': fmriAeStage,
  tokenizer: tokenizerStage,
  maskgit: maskgitStage,
};
