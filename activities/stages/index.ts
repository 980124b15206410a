/** Every stage implementation, by the name a stage plan uses. */
import type { StageImpl } from '../stage-runner.js';
import { fetchStage, prepareStage, synthStage } from './data.js';

export const STAGES: Record<string, StageImpl> = {
  fetch: fetchStage,
  synth: synthStage,
  prepare: prepareStage,
};
