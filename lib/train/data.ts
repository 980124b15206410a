/**
 * What the trainable stages read from a prepared data folder (lib/data/prepare.ts output: train_fmri.npy,
 * test_fmri.npy, train_images.npy, meta.json). The image side reads only train_images.npy, so it also runs on
 * an image set (prepareImages' output).
 */
import type * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Rng } from '../compute/rng.js';
import type { ReproductionConfig, Stage } from '../config/reproduction.js';
import { BadInputError } from '../errors.js';
import type { Params } from '../models/layers.js';
import type { ImageBatch } from '../models/types.js';
import type { NdArray } from '../tensors/ndarray.js';
import { readNpy } from '../tensors/npy.js';
import type { StepInputs, TrainTask } from './loop.js';

export interface PreparedData {
  dir: string;
  roiSizes: number[];
  trainFmri: NdArray;
  testFmri: NdArray;
}

async function readMatrix(path: string, dtype: NdArray['dtype']): Promise<NdArray> {
  const a = await readNpy(path);
  if (a.dtype !== dtype) throw new BadInputError(`${path}: expected ${dtype}, got ${a.dtype}`);
  return a;
}

/** Reads a prepared folder and checks it against the config's dataset, subject and ROI groups. */
export async function loadPrepared(dir: string, cfg: ReproductionConfig): Promise<PreparedData> {
  const metaPath = join(dir, 'meta.json');
  let meta: { dataset?: string; subject?: string; roiSizes?: number[] };
  try {
    meta = JSON.parse(await readFile(metaPath, 'utf8')) as typeof meta;
  } catch (err) {
    throw new BadInputError(
      `${metaPath}: cannot read the prepared data's meta.json (${(err as Error).message})`,
    );
  }
  if (meta.dataset !== cfg.data.dataset || meta.subject !== cfg.data.subject) {
    throw new BadInputError(
      `${dir} holds ${meta.dataset} ${meta.subject}, the config wants ${cfg.data.dataset} ${cfg.data.subject}`,
    );
  }
  const roiSizes = meta.roiSizes ?? [];
  if (cfg.data.roiPatch && cfg.data.roiPatch.join(',') !== roiSizes.join(',')) {
    throw new BadInputError(
      `${dir} has ROI groups [${roiSizes.join(', ')}], the config's roiPatch is [${cfg.data.roiPatch.join(', ')}]`,
    );
  }
  const trainFmri = await readMatrix(join(dir, 'train_fmri.npy'), 'float32');
  const testFmri = await readMatrix(join(dir, 'test_fmri.npy'), 'float32');
  return { dir, roiSizes, trainFmri, testFmri };
}

/** The training images of an image set (the `images` stage) or of a prepared folder: what the image side reads. */
export async function loadTrainImages(dir: string): Promise<ImageBatch> {
  const images = await readMatrix(join(dir, 'train_images.npy'), 'uint8');
  const [count, height, width] = images.shape as [number, number, number];
  return { data: images.data as Uint8Array, count, height, width };
}

/** The fMRI rows a stage trains on: training rows, plus the test rows when the config keeps LEA's choice. */
export function fmriRows(
  data: PreparedData,
  cfg: ReproductionConfig,
): { rows: Float32Array; count: number; k: number } {
  const k = data.trainFmri.shape[1] as number;
  const train = data.trainFmri.data as Float32Array;
  if (!cfg.training.fmriAe.includeTestFmri) return { rows: train, count: train.length / k, k };
  const rows = new Float32Array(train.length + data.testFmri.data.length);
  rows.set(train);
  rows.set(data.testFmri.data as Float32Array, train.length);
  return { rows, count: rows.length / k, k };
}

/** The rows of one batch of example indices, [batch, width] row-major. */
function gatherRows(src: Float32Array, width: number, batch: Int32Array): Float32Array {
  const out = new Float32Array(batch.length * width);
  batch.forEach((r, i) => out.set(src.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

/** A task over fMRI rows: `draw` gets each batch's rows, [b, k] row-major, and the loop's 'augment' stream. */
export function fmriTask<I extends StepInputs>(
  stage: Stage,
  fmri: { rows: Float32Array; count: number; k: number },
  params: Params,
  model: unknown,
  step: { draw: (x: Float32Array, b: number, rng: Rng) => I; loss: (inputs: I) => tf.Scalar },
): TrainTask<I> {
  const { rows, count, k } = fmri;
  return {
    stage,
    params,
    examples: count,
    model,
    draw: (batch, rng) => step.draw(gatherRows(rows, k, batch), batch.length, rng),
    loss: step.loss,
  };
}
