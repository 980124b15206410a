/**
 * Each trainable stage of a reproduction config as a run of the shared loop, on a prepared data folder
 * (lib/data/prepare.ts output: train_fmri.npy, test_fmri.npy, train_images.npy, meta.json; the image side
 * reads only train_images.npy, so it also runs on an image set, prepareImages' output):
 *   mae        stage 0 on the subject's fMRI (train + test when the autoencoder uses test fMRI). The paper
 *              reuses MinD-Vis's HCP-pretrained weights; HCP is not part of this project.
 *   fmri-ae    stage 1, optionally starting from the stage-0 weights by name and shape (spec §2.1)
 *   tokenizer  the patch tokenizer's k-means fit, or a trainable (non-frozen) VQGAN
 *   maskgit    stage 2 on the training images' tokens, conditioned on their image features
 * A stage writes outDir/<stage>/model.safetensors when done, checkpoints to outDir/<stage>/checkpoints (or the
 * given store), and reads earlier stages' model.safetensors from outDir.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { forEachChunk } from '../compute/event-loop.js';
import { Rng } from '../compute/rng.js';
import type { ReproductionConfig, Stage } from '../config/reproduction.js';
import { BadInputError } from '../errors.js';
import { FmriAutoencoder, dropVoxels, type FmriAeConfig } from '../models/fmri-autoencoder.js';
import { createImageFeatureExtractor, flipHorizontal, type ImageBatch } from '../models/image-features.js';
import {
  countParams,
  loadParamsStrict,
  paramsToArrays,
  type Params,
  type TransferReport,
} from '../models/layers.js';
import { FmriMae, loadMaeIntoAutoencoder, type MaeConfig } from '../models/mae.js';
import { MaskGit, type MaskGitConfig } from '../models/maskgit.js';
import {
  PatchTokenizer,
  VqGan,
  fitPatchTokenizer,
  imagesToTensor,
  type ImageTokenizer,
  type VqGanConfig,
} from '../models/vq-tokenizer.js';
import type { NdArray } from '../tensors/ndarray.js';
import { readNpy } from '../tensors/npy.js';
import { readSafetensors, writeSafetensors } from '../tensors/safetensors.js';
import { LocalCheckpointStore, type CheckpointStore } from './checkpoint.js';
import { train, type TrainOptions, type TrainResult, type TrainSettings, type TrainTask } from './loop.js';
import { architectureMismatch, TOKENIZER_KEYS } from '../pipeline/weights-fit.js';
import { readWeightsFile } from '../weights/import.js';
import { loadImportedTransformer } from '../weights/kinds/maskgit-transformer.js';

export const MODEL_FORMAT = 'lea-model/1';

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

export function fmriAeConfig(cfg: ReproductionConfig, roiSizes: number[]): FmriAeConfig {
  const m = cfg.models.fmriAe;
  return {
    roiSizes,
    tokensPerRoi: m.tokensPerRoi,
    width: m.width,
    depth: m.depth,
    heads: m.heads,
    mlpRatio: m.mlpRatio,
    latent: m.latent,
    decoderWidth: m.decoderWidth,
    decoderDepth: m.decoderDepth,
    decoderHeads: m.decoderHeads,
    eps: m.eps,
  };
}

export function maeConfig(cfg: ReproductionConfig): MaeConfig {
  return { ...cfg.models.mae };
}

export function vqganConfig(cfg: ReproductionConfig): VqGanConfig {
  const t = cfg.models.tokenizer;
  if (t.kind !== 'vqgan') throw new BadInputError(`the config's tokenizer is '${t.kind}', not a VQGAN`);
  const { chBase, chMult, numResBlocks, numResMids, chLatent, codes, groups, beta } = t;
  return { chBase, chMult, numResBlocks, numResMids, chLatent, codes, groups, beta };
}

export function maskgitConfig(
  cfg: ReproductionConfig,
  tokenizer: ImageTokenizer,
  image: { height: number; width: number },
): MaskGitConfig {
  const [rows, cols] = tokenizer.grid(image.height, image.width);
  return {
    ...cfg.models.maskgit,
    codes: tokenizer.codes,
    length: rows * cols,
    featureDim: cfg.models.imageFeatures.dim,
  };
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

function gatherRows(src: Float32Array, width: number, batch: Int32Array): Float32Array {
  const out = new Float32Array(batch.length * width);
  batch.forEach((r, i) => out.set(src.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

/** The trained weights under their PyTorch names, with the stage, the step reached and the model config. */
export async function saveModel(
  path: string,
  stage: Stage,
  params: Params,
  model: unknown,
  step: number,
): Promise<void> {
  await writeSafetensors(path, paramsToArrays(params), {
    format: MODEL_FORMAT,
    stage,
    step: String(step),
    model: JSON.stringify(model),
  });
}

async function readModelFile(path: string, stage: Stage, needBy: string): Promise<Map<string, NdArray>> {
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

/** The tokenizer a config describes, with the weights the tokenizer stage wrote under outDir. */
export async function loadTokenizer(
  cfg: ReproductionConfig,
  outDir: string,
  needBy: string,
): Promise<ImageTokenizer> {
  const path = join(outDir, 'tokenizer', 'model.safetensors');
  const tensors = await readModelFile(path, 'tokenizer', needBy);
  const t = cfg.models.tokenizer;
  if (t.kind === 'patch-kmeans') {
    const book = tensors.get('quantizer.embedding.weight');
    if (
      !book ||
      book.shape.length !== 2 ||
      book.shape[0] !== t.codes ||
      book.shape[1] !== t.patchSize * t.patchSize * 3
    ) {
      throw new BadInputError(
        `${path}: 'quantizer.embedding.weight' is not [${t.codes}, ${t.patchSize * t.patchSize * 3}]`,
      );
    }
    return new PatchTokenizer(t.patchSize, book.data as Float32Array);
  }
  const vq = new VqGan(vqganConfig(cfg), new Rng(cfg.seed, 'tokenizer/init'));
  loadParamsStrict(vq.params, tensors, path);
  return vq;
}

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

/** The loop's settings out of a config's training section (which may carry more, e.g. maskgit's flip). */
function settingsOf(s: TrainSettings): TrainSettings {
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

async function runLoop(
  stage: Stage,
  task: TrainTask,
  settings: TrainSettings,
  cfg: ReproductionConfig,
  opts: StageOptions,
): Promise<TrainResult> {
  const store = opts.store ?? new LocalCheckpointStore(join(opts.outDir, stage, 'checkpoints'));
  return train(task, settings, { ...opts, seed: cfg.seed, store });
}

/**
 * Stage 1's starting model, as runStage trains it: the autoencoder's own initialisation, then (initFrom: mae)
 * stage 0's weights by name and shape: MinD-Vis's imported MAE when `weights.mae` is given (training.mae.initFrom),
 * else the mae stage's output in outDir; the same names either way.
 */
export async function initialAutoencoder(
  cfg: ReproductionConfig,
  roiSizes: number[],
  opts: Pick<StageOptions, 'outDir' | 'weights'>,
): Promise<{ model: FmriAutoencoder; transfer?: TransferReport }> {
  const model = new FmriAutoencoder(fmriAeConfig(cfg, roiSizes), new Rng(cfg.seed, 'fmri-ae/init'));
  if (cfg.training.fmriAe.initFrom !== 'mae') return { model };
  try {
    const imported = opts.weights?.mae;
    const mae = imported
      ? (await readWeightsFile(imported, 'mindvis-mae')).tensors
      : await readModelFile(join(opts.outDir, 'mae', 'model.safetensors'), 'mae', 'fmri-ae (initFrom: mae)');
    return { model, transfer: loadMaeIntoAutoencoder(model, mae) };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/**
 * Stage 2's starting model, as runStage trains it: MaskGit's own initialisation, then every tensor of the
 * imported MaskGIT transformer (`weights.init`) but decoder_embed. `report` says what was loaded.
 */
export async function initialMaskGit(
  cfg: ReproductionConfig,
  mc: MaskGitConfig,
  opts: Pick<StageOptions, 'weights'>,
): Promise<{ model: MaskGit; report?: string }> {
  const model = new MaskGit(mc, new Rng(cfg.seed, 'maskgit/init'));
  if (!opts.weights?.init) return { model };
  try {
    const init = await readWeightsFile(opts.weights.init, 'maskgit-transformer');
    return { model, report: loadImportedTransformer(model, init.tensors, init.record.name) };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** Trains one stage of `cfg` (see the module comment); earlier stages' outputs must already be in outDir. */
export async function runStage(
  stage: Stage,
  cfg: ReproductionConfig,
  opts: StageOptions,
): Promise<StageResult> {
  const dir = join(opts.outDir, stage);
  await mkdir(dir, { recursive: true });
  const modelPath = join(dir, 'model.safetensors');
  const init = new Rng(cfg.seed, `${stage}/init`);

  if (stage === 'mae' || stage === 'fmri-ae') {
    const data = await loadPrepared(opts.dataDir, cfg);
    const { rows, count, k } = fmriRows(data, cfg);
    const run = async <M extends { params: Params; dispose(): void }>(
      model: M,
      modelCfg: unknown,
      settings: TrainSettings,
      loss: (x: Float32Array, b: number, rng: Rng) => tf.Scalar,
      transfer?: TransferReport,
    ): Promise<StageResult> => {
      try {
        const task: TrainTask = {
          stage,
          params: model.params,
          examples: count,
          model: modelCfg,
          loss: (batch, rng) => loss(gatherRows(rows, k, batch), batch.length, rng),
        };
        const training = await runLoop(stage, task, settings, cfg, opts);
        await saveModel(modelPath, stage, model.params, modelCfg, training.step);
        const parameters = countParams(model.params);
        return { stage, training, modelPath, parameters, ...(transfer ? { transfer } : {}) };
      } finally {
        model.dispose();
      }
    };
    if (stage === 'mae') {
      const s = cfg.training.mae;
      if (!s || 'initFrom' in s)
        throw new BadInputError(
          'the config has no training.mae settings: stage 0 is not trained by this config',
        );
      const mc = maeConfig(cfg);
      const mae = new FmriMae(mc, init);
      return run(mae, mc, settingsOf(s), (x, b, rng) => mae.loss(tf.tensor2d(x, [b, k]), rng));
    }
    const { model: ae, transfer } = await initialAutoencoder(cfg, data.roiSizes, opts);
    if (transfer) {
      const skipped = transfer.notLoaded.map((n) => `${n.name} (${n.reason})`);
      opts.onNotice?.(
        `fmri-ae: loaded ${transfer.loaded.length} tensors from stage 0; kept own init for ${skipped.length}: ${skipped.join(', ')}; ` +
          `unused from stage 0: ${transfer.unused.join(', ') || 'none'}`,
      );
    }
    const rate = cfg.models.fmriAe.voxelDropRate;
    return run(
      ae,
      ae.cfg,
      settingsOf(cfg.training.fmriAe),
      (clean, b, rng) => {
        const corrupted = clean.slice();
        dropVoxels(corrupted, b, k, rate, rng);
        return ae.loss(tf.tensor2d(corrupted, [b, k]), tf.tensor2d(clean, [b, k]));
      },
      transfer,
    );
  }

  const trainImages = await loadTrainImages(opts.dataDir);
  if (stage === 'tokenizer') {
    const t = cfg.models.tokenizer;
    if (t.kind === 'patch-kmeans') {
      const { tokenizer, history } = fitPatchTokenizer(
        trainImages,
        t,
        new Rng(cfg.seed, 'tokenizer/kmeans'),
        (it, mse) =>
          opts.onProgress?.({
            stage,
            step: it,
            iterations: t.iterations,
            loss: mse,
            lr: 0,
            stepsPerSecond: 0,
            etaSeconds: 0,
            startStep: 0,
          }),
      );
      const book = {
        dtype: 'float32' as const,
        shape: [tokenizer.codes, tokenizer.dim],
        data: tokenizer.codebook,
      };
      await writeSafetensors(modelPath, new Map([['quantizer.embedding.weight', book]]), {
        format: MODEL_FORMAT,
        stage,
        step: String(t.iterations),
        model: JSON.stringify(t),
      });
      return { stage, kmeans: history, modelPath, parameters: tokenizer.codebook.length };
    }
    const vc = vqganConfig(cfg);
    if (t.frozen) return frozenTokenizer(vc, opts, modelPath);
    if (!cfg.training.tokenizer)
      throw new BadInputError('models.tokenizer: a VQGAN that is not frozen needs training.tokenizer');
    const vq = new VqGan(vc, init);
    const pixels = trainImages.height * trainImages.width * 3;
    try {
      const task: TrainTask = {
        stage,
        params: vq.params,
        examples: trainImages.count,
        model: vc,
        loss: (batch) => {
          const rowsData = new Uint8Array(batch.length * pixels);
          batch.forEach((r, i) =>
            rowsData.set(trainImages.data.subarray(r * pixels, (r + 1) * pixels), i * pixels),
          );
          return vq.losses(imagesToTensor({ ...trainImages, data: rowsData, count: batch.length })).total;
        },
      };
      const training = await runLoop(stage, task, settingsOf(cfg.training.tokenizer), cfg, opts);
      await saveModel(modelPath, stage, vq.params, vc, training.step);
      return { stage, training, modelPath, parameters: countParams(vq.params) };
    } finally {
      vq.dispose();
    }
  }

  // maskgit: tokens and features of every training image (and of its mirror image when flipping) up front
  const tokenizer = await loadTokenizer(cfg, opts.outDir, 'maskgit');
  const clip = opts.weights?.clip ? await readWeightsFile(opts.weights.clip, 'openclip-vit-h14') : undefined;
  const features = createImageFeatureExtractor(cfg.models.imageFeatures, trainImages, cfg.seed, clip);
  let mg: MaskGit | undefined;
  try {
    const views = cfg.training.maskgit.flip ? [trainImages, flipHorizontal(trainImages)] : [trainImages];
    const tokens: Int32Array[] = [];
    for (const v of views) tokens.push(await encodeInChunks(tokenizer, v, opts.signal));
    const feats: Float32Array[] = [];
    for (const v of views) feats.push(await features.extract(v));
    const mc = maskgitConfig(cfg, tokenizer, trainImages);
    const { model, report } = await initialMaskGit(cfg, mc, opts);
    mg = model;
    if (report) opts.onNotice?.(`maskgit: ${report}`);
    const { length, featureDim } = mc;
    const task: TrainTask = {
      stage,
      params: model.params,
      examples: trainImages.count,
      model: mc,
      loss: (batch, rng) => {
        const t = new Int32Array(batch.length * length);
        const f = new Float32Array(batch.length * featureDim);
        batch.forEach((r, i) => {
          const view = views.length > 1 && rng.uniform() < 0.5 ? 1 : 0;
          t.set((tokens[view] as Int32Array).subarray(r * length, (r + 1) * length), i * length);
          f.set((feats[view] as Float32Array).subarray(r * featureDim, (r + 1) * featureDim), i * featureDim);
        });
        return model.loss(t, f, batch.length, rng);
      },
    };
    const training = await runLoop(stage, task, settingsOf(cfg.training.maskgit), cfg, opts);
    await saveModel(modelPath, stage, model.params, mc, training.step);
    return { stage, training, modelPath, parameters: countParams(model.params) };
  } finally {
    mg?.dispose();
    features.dispose();
    tokenizer.dispose();
  }
}

/**
 * Images per tokenizer forward: bounds the activations (a 256 px VQGAN level holds [n, 256, 256, ch]) and how
 * long one forward holds the event loop (4 images of the paper's VQGAN, about 12 s on 2 CPU cores).
 */
const TOKENIZE_PIXELS = 4 * 256 * 256;

/** Token ids of every image, a bounded batch at a time, yielding between batches (heartbeats, cancellation). */
async function encodeInChunks(
  tokenizer: ImageTokenizer,
  images: ImageBatch,
  signal?: AbortSignal,
): Promise<Int32Array> {
  const [rows, cols] = tokenizer.grid(images.height, images.width);
  const px = images.height * images.width * 3;
  const out = new Int32Array(images.count * rows * cols);
  const per = Math.max(1, Math.floor(TOKENIZE_PIXELS / (images.height * images.width)));
  await forEachChunk(
    images.count,
    per,
    (start, count) => {
      const data = images.data.subarray(start * px, (start + count) * px);
      out.set(tokenizer.encode({ ...images, data, count }), start * rows * cols);
    },
    signal,
  );
  return out;
}

/**
 * The frozen tokenizer (the paper's): MaskGIT's ImageNet VQGAN as imported, written as this stage's model so
 * that every later stage loads it like a trained one. Its architecture must be the config's.
 */
async function frozenTokenizer(vc: VqGanConfig, opts: StageOptions, modelPath: string): Promise<StageResult> {
  const file = opts.weights?.vqgan;
  if (!file) throw new BadInputError('models.tokenizer: a frozen VQGAN needs models.tokenizer.weights');
  const { record, tensors } = await readWeightsFile(file, 'maskgit-tokenizer');
  const wrong = architectureMismatch({ ...vc }, record.config, TOKENIZER_KEYS);
  if (wrong.length) {
    throw new BadInputError(`models.tokenizer does not match weights '${record.name}': ${wrong.join(', ')}`);
  }
  await writeSafetensors(modelPath, tensors, {
    format: MODEL_FORMAT,
    stage: 'tokenizer',
    step: '0',
    model: JSON.stringify(vc),
  });
  let parameters = 0;
  for (const t of tensors.values()) parameters += t.data.length;
  return { stage: 'tokenizer', modelPath, parameters };
}
