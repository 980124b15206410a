/**
 * Trains any stage of lib/train/registry.ts on a prepared data folder (lib/train/data.ts): the stage sets up
 * its model and loss, the shared loop (lib/train/loop.ts) trains it, and its weights are saved. A stage writes
 * outDir/<stage>/model.safetensors when done, checkpoints to outDir/<stage>/checkpoints (or the given store),
 * and reads earlier stages' model.safetensors from outDir.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_COMPILE } from '../compute/compile-modes.js';
import type { ReproductionConfig, Stage } from '../config/reproduction.js';
import { countParams } from '../models/layers.js';
import { LocalCheckpointStore } from './checkpoint.js';
import { train } from './loop.js';
import { TRAINABLE_STAGES } from './registry.js';
import { saveModel, type StageOptions, type StageResult } from './stage.js';

export { fmriRows, loadPrepared, loadTrainImages, type PreparedData } from './data.js';
export { MODEL_FORMAT, type StageOptions, type StageResult } from './stage.js';
export { fmriAeConfig, initialAutoencoder } from './stages/fmri-ae.js';
export { initialMaskGit, maskgitConfig } from './stages/maskgit.js';
export { loadTokenizer } from './stages/tokenizer.js';

/** Trains one stage of `cfg`; earlier stages' outputs must already be in outDir. */
export async function runStage(
  stage: Stage,
  cfg: ReproductionConfig,
  opts: StageOptions,
): Promise<StageResult> {
  const dir = join(opts.outDir, stage);
  await mkdir(dir, { recursive: true });
  const modelPath = join(dir, 'model.safetensors');
  const work = await TRAINABLE_STAGES[stage].setup(cfg, opts, modelPath);
  if (!('task' in work)) return work; // no gradient loop: the stage wrote its model itself
  const { task, settings, transfer } = work;
  try {
    const store = opts.store ?? new LocalCheckpointStore(join(dir, 'checkpoints'));
    const compile = cfg.runtime?.compile ?? DEFAULT_COMPILE;
    const training = await train(task, settings, { ...opts, seed: cfg.seed, store, compile });
    await saveModel(modelPath, stage, task.params, task.model, training.step);
    const parameters = countParams(task.params);
    return { stage, training, modelPath, parameters, ...(transfer ? { transfer } : {}) };
  } finally {
    work.dispose();
  }
}
