/** Every stage implementation, by the name a stage plan uses. */
import type { StageImpl } from '../stage-runner.js';
import { prepareStage, synthStage } from './data.js';

export const STAGES: Record<string, StageImpl> = {
  synth: synthStage,
  prepare: prepareStage,
};
