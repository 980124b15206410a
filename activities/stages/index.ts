/** Every stage implementation, by the name a stage plan uses (lib/pipeline/plan.ts). */
import type { StageImpl } from '../stage-contract.js';
import { decodeStage, encodeStage, featuresStage, latentsStage, ridgeStage } from './alignment.js';
import { fetchStage, prepareStage, synthStage } from './data.js';
import { metricsStage } from './metrics.js';
import { trainingStage } from './training.js';

export const STAGES: Record<string, StageImpl> = {
  fetch: fetchStage,
  synth: synthStage,
  prepare: prepareStage,
  mae: trainingStage('mae'),
  'fmri-ae': trainingStage('fmri-ae'),
  tokenizer: trainingStage('tokenizer'),
  maskgit: trainingStage('maskgit'),
  features: featuresStage,
  latents: latentsStage,
  ridge: ridgeStage,
  decode: decodeStage,
  encode: encodeStage,
  metrics: metricsStage,
};
