/**
 * The contract of one trainable stage (lib/train/stages/*.ts), and what every stage shares: its options and
 * result, the model file it writes, the loop settings out of its config section. The table of stages is
 * lib/train/registry.ts; lib/train/stages.ts runs any entry, lib/pipeline/plan.ts places it in a run.
 */
import { stat } from 'node:fs/promises';
import type { ReproductionConfig, Stage } from '../config/reproduction.js';
import { BadInputError } from '../errors.js';
import { paramsToArrays, type Params, type TransferReport } from '../models/layers.js';
import type { NdArray } from '../tensors/ndarray.js';
import { readSafetensors, writeSafetensors } from '../tensors/safetensors.js';
import type { CheckpointStore } from './checkpoint.js';
import type { TrainOptions, TrainResult, TrainSettings, TrainTask } from './loop.js';

export const MODEL_FORMAT = 'lea-model/1';

export interface StageOptions extends Omit<TrainOptions, 'seed' | 'store'> {
  /** Prepared data folder. */
  dataDir: string;
  /** The run's training folder: outDir/<stage>/ for this stage's outputs, earlier stages' outputs beside it. */
  outDir: string;
  /** Where checkpoints go (default: a folder store at outDir/<stage>/checkpoints). */
  store?: CheckpointStore;
  /** Imported weights the stage reads, by input name (clip, vqgan, init, mae) → local weights.safetensors. */
  weights?: Record<string, string>;
}

export interface StageResult {
  stage: Stage;
  /** The gradient loop's result; absent for the k-means tokenizer. */
  training?: TrainResult;
  /** k-means: mean squared quantisation error after seeding and after each iteration. */
  kmeans?: number[];
  /** Stage-0 weights the autoencoder did not take (fmri-ae with initFrom mae). */
  transfer?: TransferReport;
  modelPath: string;
  parameters: number;
}

/** A stage's work for the shared loop (lib/train/loop.ts): the task, its settings, and the model to free after. */
export interface StageTraining {
  task: TrainTask;
  settings: TrainSettings;
  /** Frees the model the task trains. */
  dispose(): void;
  /** Stage-0 weights the autoencoder did not take (fmri-ae with initFrom mae). */
  transfer?: TransferReport;
}

/** A trainable stage's place in a run (lib/pipeline/plan.ts); a stage returns none when the config skips it. */
export interface StagePlanning {
  /** Earlier stages whose model it reads: input name → plan stage (besides its data input). */
  earlier: Record<string, string>;
  /**
   * The config sections it reads: with the seed and the data's identity, its config and so its cache key. `data`:
   * the data options it computes with, beside the identity (e.g. the MAE's patch padding).
   */
  sections: {
    data?: Partial<ReproductionConfig['data']>;
    models: Partial<ReproductionConfig['models']>;
    training: Record<string, unknown>;
  };
  /** Imported weights it reads, by input name; undefined names are not used by this config. */
  weights: Record<string, string | undefined>;
}

export interface TrainableStage {
  readonly name: Stage;
  /** Raised when the stage's code computes different numbers (a new version is a new cache key). */
  readonly codeVersion: string;
  /**
   * What it trains on: a subject's prepared folder (fMRI side) or the dataset's image set (image side, shared by
   * every subject of the dataset, so its config names no subject).
   */
  readonly data: 'prepared' | 'images';
  /** `uses`: the imported weights the config names, by config field (lib/pipeline/plan.ts weightsUses). */
  plan(cfg: ReproductionConfig, uses: Record<string, string>): StagePlanning | undefined;
  /** The loop's settings out of the config (undefined when it has none: a frozen or k-means tokenizer). */
  settings(cfg: ReproductionConfig): TrainSettings | undefined;
  /**
   * Reads its data and earlier stages' outputs and builds its model: the loop's work, or the finished result
   * of a stage with no gradient loop (k-means, a frozen VQGAN), which writes modelPath itself.
   */
  setup(cfg: ReproductionConfig, opts: StageOptions, modelPath: string): Promise<StageTraining | StageResult>;
}

/** The loop's settings out of a config's training section (which may carry more, e.g. maskgit's flip). */
export function settingsOf(s: TrainSettings): TrainSettings {
  const { lr, batchSize, iterations, warmup, schedule, clip, weightDecay, betas, eps, decayParams } = s;
  return {
    lr,
    batchSize,
    iterations,
    warmup,
    schedule,
    clip,
    weightDecay,
    betas,
    eps,
    decayParams,
    checkpointEvery: s.checkpointEvery,
  };
}

/** The trained weights under their PyTorch names, with the stage, the step reached and the model config. */
export async function saveModel(
  path: string,
  stage: Stage,
  params: Params,
  model: unknown,
  step: number,
): Promise<void> {
  await writeModelFile(path, stage, paramsToArrays(params), model, step);
}

/** A model file of any content: a stage without trainable parameters (k-means, frozen VQGAN) writes its own. */
export async function writeModelFile(
  path: string,
  stage: Stage,
  tensors: Map<string, NdArray>,
  model: unknown,
  step: number,
): Promise<void> {
  await writeSafetensors(path, tensors, {
    format: MODEL_FORMAT,
    stage,
    step: String(step),
    model: JSON.stringify(model),
  });
}

/** An earlier stage's model file; `needBy` names the reader in the error when that stage has not run. */
export async function readModelFile(
  path: string,
  stage: Stage,
  needBy: string,
): Promise<Map<string, NdArray>> {
  if (!(await stat(path).catch(() => undefined))) {
    throw new BadInputError(
      `${needBy} needs the ${stage} stage's weights at ${path}: run \`lea train ${stage}\` first`,
    );
  }
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== MODEL_FORMAT || metadata.stage !== stage)
    throw new BadInputError(`${path}: not a ${stage} model file`);
  return tensors;
}
