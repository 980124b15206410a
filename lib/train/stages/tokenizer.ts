/**
 * The image tokenizer on the dataset's training images: the patch tokenizer's k-means fit, MaskGIT's frozen
 * ImageNet VQGAN as imported (the paper's), or a VQGAN trained here (not frozen).
 */
import type * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { Rng } from '../../compute/rng.js';
import type { ReproductionConfig } from '../../config/reproduction.js';
import { BadInputError } from '../../errors.js';
import { loadParamsStrict } from '../../models/layers.js';
import type { ImageBatch } from '../../models/types.js';
import {
  PatchTokenizer,
  VqGan,
  fitPatchTokenizer,
  imagesToTensor,
  type ImageTokenizer,
  type VqGanConfig,
} from '../../models/vq-tokenizer.js';
import { architectureMismatch, importedArchitecture, TOKENIZER_KEYS } from '../../pipeline/weights-fit.js';
import { readWeightsFile } from '../../weights/import.js';
import { loadTrainImages } from '../data.js';
import type { TrainSettings, TrainTask } from '../loop.js';
import {
  readModelFile,
  settingsOf,
  writeModelFile,
  type StageOptions,
  type StageResult,
  type TrainableStage,
} from '../stage.js';

export function vqganConfig(cfg: ReproductionConfig): VqGanConfig {
  const t = cfg.models.tokenizer;
  if (t.kind !== 'vqgan') throw new BadInputError(`the config's tokenizer is '${t.kind}', not a VQGAN`);
  const { chBase, chMult, numResBlocks, numResMids, chLatent, codes, groups, beta, numerics } = t;
  return { chBase, chMult, numResBlocks, numResMids, chLatent, codes, groups, beta, numerics };
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

/** The patch tokenizer: k-means on the images' patches; its codebook is the model file. */
async function fitKmeans(
  cfg: ReproductionConfig,
  t: Extract<ReproductionConfig['models']['tokenizer'], { kind: 'patch-kmeans' }>,
  images: ImageBatch,
  opts: StageOptions,
  modelPath: string,
): Promise<StageResult> {
  const { tokenizer, history } = fitPatchTokenizer(
    images,
    t,
    new Rng(cfg.seed, 'tokenizer/kmeans'),
    (it, mse) =>
      opts.onProgress?.({
        stage: 'tokenizer',
        step: it,
        iterations: t.iterations,
        loss: mse,
        lr: 0,
        gradNorm: NaN, // k-means has no gradient
        stepsPerSecond: 0,
        etaSeconds: 0,
        startStep: 0,
      }),
  );
  // the codebook [codes, patch·patch·3] under the VQGAN's name for its codebook
  const book = {
    dtype: 'float32' as const,
    shape: [tokenizer.codes, tokenizer.dim],
    data: tokenizer.codebook,
  };
  await writeModelFile(
    modelPath,
    'tokenizer',
    new Map([['quantizer.embedding.weight', book]]),
    t,
    t.iterations,
  );
  return { stage: 'tokenizer', kmeans: history, modelPath, parameters: tokenizer.codebook.length };
}

/**
 * The frozen tokenizer (the paper's): MaskGIT's ImageNet VQGAN as imported, written as this stage's model so
 * that every later stage loads it like a trained one. Its architecture must be the config's.
 */
async function frozenTokenizer(vc: VqGanConfig, opts: StageOptions, modelPath: string): Promise<StageResult> {
  const file = opts.weights?.vqgan;
  if (!file) throw new BadInputError('models.tokenizer: a frozen VQGAN needs models.tokenizer.weights');
  const { record, tensors } = await readWeightsFile(file, 'maskgit-tokenizer');
  const wrong = architectureMismatch({ ...vc }, importedArchitecture(record), TOKENIZER_KEYS);
  if (wrong.length) {
    throw new BadInputError(`models.tokenizer does not match weights '${record.name}': ${wrong.join(', ')}`);
  }
  await writeModelFile(modelPath, 'tokenizer', tensors, vc, 0);
  let parameters = 0;
  for (const t of tensors.values()) parameters += t.data.length;
  return { stage: 'tokenizer', modelPath, parameters };
}

/** The loop's settings when the config trains a VQGAN; the k-means and the frozen tokenizer have none. */
function tokenizerSettings(cfg: ReproductionConfig): TrainSettings | undefined {
  const t = cfg.models.tokenizer;
  const s = cfg.training.tokenizer;
  return t.kind === 'vqgan' && !t.frozen && s ? settingsOf(s) : undefined;
}

export const tokenizerStage: TrainableStage = {
  name: 'tokenizer',
  // 2: the codebook lookup as a one-hot product (no read back mid-step, so the step compiles)
  codeVersion: '2',
  data: 'images',
  plan: ({ models, training }, uses) => ({
    earlier: {},
    sections: {
      models: { tokenizer: models.tokenizer },
      training: training.tokenizer ? { tokenizer: training.tokenizer } : {},
    },
    weights: { vqgan: uses['models.tokenizer.weights'] },
  }),
  settings: tokenizerSettings,
  async setup(cfg, opts, modelPath) {
    const images = await loadTrainImages(opts.dataDir);
    const t = cfg.models.tokenizer;
    if (t.kind === 'patch-kmeans') return fitKmeans(cfg, t, images, opts, modelPath);
    const vc = vqganConfig(cfg);
    if (t.frozen) return frozenTokenizer(vc, opts, modelPath);
    const settings = tokenizerSettings(cfg);
    if (!settings)
      throw new BadInputError('models.tokenizer: a VQGAN that is not frozen needs training.tokenizer');
    const vq = new VqGan(vc, new Rng(cfg.seed, 'tokenizer/init'));
    const pixels = images.height * images.width * 3;
    const task: TrainTask<{ images: tf.Tensor4D }> = {
      stage: 'tokenizer',
      params: vq.params,
      examples: images.count,
      model: vc,
      // the batch's images [b, h, w, 3] → reconstruction + codebook + β·commitment
      draw: (batch) => {
        const data = new Uint8Array(batch.length * pixels);
        batch.forEach((r, i) => data.set(images.data.subarray(r * pixels, (r + 1) * pixels), i * pixels));
        return { images: imagesToTensor({ ...images, data, count: batch.length }) };
      },
      loss: ({ images: x }) => vq.losses(x).total,
    };
    return { task, settings, dispose: () => vq.dispose() };
  },
};
