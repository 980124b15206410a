/**
 * Stage 2: MaskGIT on the tokens of the dataset's training images (and of their mirror images when the config
 * flips), conditioned on their image features; optionally starting from MaskGIT's imported transformer.
 */
import { Rng } from '../../compute/rng.js';
import { forEachChunk } from '../../compute/event-loop.js';
import type { ReproductionConfig } from '../../config/reproduction.js';
import { createImageFeatureExtractor, flipHorizontal } from '../../models/image-features.js';
import { MaskGit, type MaskGitConfig, type MaskGitStep } from '../../models/maskgit.js';
import type { ImageBatch } from '../../models/types.js';
import type { ImageTokenizer } from '../../models/vq-tokenizer.js';
import { readWeightsFile } from '../../weights/import.js';
import { loadImportedTransformer } from '../../weights/kinds/maskgit-transformer.js';
import { loadTrainImages } from '../data.js';
import type { TrainTask } from '../loop.js';
import { settingsOf, type StageOptions, type TrainableStage } from '../stage.js';
import { loadTokenizer } from './tokenizer.js';

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

export const maskgitStage: TrainableStage = {
  name: 'maskgit',
  // 2: the loss over every position, weighted to the masked ones (one compiled program for any mask ratio)
  // 3: plain blocks differentiated by tfjs, no hand-written backward (rounding differs)
  codeVersion: '3',
  data: 'images',
  plan: ({ models, training }, uses) => ({
    earlier: { tokenizer: 'tokenizer' },
    sections: {
      models: { maskgit: models.maskgit, tokenizer: models.tokenizer, imageFeatures: models.imageFeatures },
      training: { maskgit: training.maskgit },
    },
    weights: { clip: uses['models.imageFeatures.weights'], init: uses['models.maskgit.initFrom'] },
  }),
  settings: (cfg) => settingsOf(cfg.training.maskgit),
  async setup(cfg, opts) {
    // tokens and features of every training image (and of its mirror image when flipping), up front
    const images = await loadTrainImages(opts.dataDir);
    const tokenizer = await loadTokenizer(cfg, opts.outDir, 'maskgit');
    const clip = opts.weights?.clip
      ? await readWeightsFile(opts.weights.clip, 'openclip-vit-h14')
      : undefined;
    const features = createImageFeatureExtractor(cfg.models.imageFeatures, images, cfg.seed, clip);
    try {
      const views = cfg.training.maskgit.flip ? [images, flipHorizontal(images)] : [images];
      const tokens: Int32Array[] = [];
      for (const v of views) tokens.push(await encodeInChunks(tokenizer, v, opts.signal));
      const feats: Float32Array[] = [];
      for (const v of views) feats.push(await features.extract(v));
      const mc = maskgitConfig(cfg, tokenizer, images);
      const { model, report } = await initialMaskGit(cfg, mc, opts);
      if (report) opts.onNotice?.(`maskgit: ${report}`);
      const { length, featureDim } = mc;
      const task: TrainTask<MaskGitStep> = {
        stage: 'maskgit',
        params: model.params,
        examples: images.count,
        model: mc,
        // each row from one view, drawn per row: tokens [b, length] and features [b, featureDim]
        draw: (batch, rng) => {
          const t = new Int32Array(batch.length * length);
          const f = new Float32Array(batch.length * featureDim);
          batch.forEach((r, i) => {
            const view = views.length > 1 && rng.uniform() < 0.5 ? 1 : 0;
            t.set((tokens[view] as Int32Array).subarray(r * length, (r + 1) * length), i * length);
            f.set(
              (feats[view] as Float32Array).subarray(r * featureDim, (r + 1) * featureDim),
              i * featureDim,
            );
          });
          return model.drawStep(t, f, batch.length, rng);
        },
        loss: (inputs) => model.stepLoss(inputs),
      };
      return { task, settings: settingsOf(cfg.training.maskgit), dispose: () => model.dispose() };
    } finally {
      // the loss reads the tokens and features computed above, not the networks that made them
      features.dispose();
      tokenizer.dispose();
    }
  },
};
