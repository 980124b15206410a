/** Every stage implementation, by the name a stage plan uses (lib/pipeline/plan.ts). */
import type { StageImpl } from '../stage-contract.js';
import {
  decodeStage,
  encodeStage,
  featuresStage,
  latentsStage,
  ridgeStage,
  subjectFeaturesStage,
} from './alignment.js';
import { fetchStage, imagesStage, prepareStage, synthStage } from './data.js';
import { TRAINABLE_STAGES } from '../../lib/train/registry.js';
import { metricsStage } from './metrics.js';
import { trainingStage } from './training.js';

export const STAGES: Record<string, StageImpl> = {
  fetch: fetchStage,
  synth: synthStage,
  prepare: prepareStage,
  images: imagesStage,
  ...Object.fromEntries(Object.values(TRAINABLE_STAGES).map((s) => [s.name, trainingStage(s.name, s.data)])),
  features: featuresStage,
  'subject-features': subjectFeaturesStage,
  latents: latentsStage,
  ridge: ridgeStage,
  decode: decodeStage,
  encode: encodeStage,
  metrics: metricsStage,
};
