/**
 * The inference stages around the two ridge maps (spec §2.6, §3): image features, fMRI latents, the ridge
 * fits with the transductive re-normalisation, MaskGIT decoding (5 samples per test fMRI) and encoding.
 * Arrays travel between stages as .npy files.
 */
import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { encodeFeatures } from '../../lib/alignment/encode.js';
import { maskgitDecode, repeatForSamples } from '../../lib/models/maskgit-decode.js';
import { matFromNdArray, type Mat } from '../../lib/alignment/matrix.js';
import {
  fitRidge,
  predictRidge,
  renormalise,
  selectAlpha,
  type RidgeModel,
} from '../../lib/alignment/ridge.js';
import { forEachChunk } from '../../lib/compute/event-loop.js';
import { STIMULI_FILE, STORED_IMAGE_FILES, type StimuliFile } from '../../lib/data/prepare.js';
import { BadInputError } from '../../lib/errors.js';
import { Rng } from '../../lib/compute/rng.js';
import { tidyValues } from '../../lib/compute/values.js';
import {
  createImageFeatureExtractor,
  type ImageBatch,
  type ImageFeatureConfig,
  type ImageFeatureExtractor,
} from '../../lib/models/image-features.js';
import { readWeightsFile, weightsFileIn } from '../../lib/weights/import.js';
import { loadFmriAutoencoder, loadImageTokenizer, loadMaskGit } from '../../lib/pipeline/models.js';
import type { NdArray } from '../../lib/tensors/ndarray.js';
import { readNpy, writeNpy } from '../../lib/tensors/npy.js';
import { stageConfig, type StageContext, type StageImpl, type StageResult } from '../stage-contract.js';

export async function readImages(path: string): Promise<ImageBatch> {
  const a = await readNpy(path);
  const [count, height, width, channels] = a.shape;
  if (a.dtype !== 'uint8' || channels !== 3 || count === undefined || !height || !width) {
    throw new Error(`${path}: expected uint8 [N,H,W,3] images, got ${a.dtype} [${a.shape.join(',')}]`);
  }
  return { data: a.data as Uint8Array, count, height, width };
}

/** Rows per model forward in the inference stages: bounds activation memory, and the stage yields between. */
const ROWS_PER_FORWARD = 64;
/** Pixels the tokenizer decodes per forward (2 images of 256 px). */
const DECODE_PIXELS = 2 * 256 * 256;

const f32 = (data: Float32Array, shape: number[]): NdArray => ({ dtype: 'float32', shape, data });
const matToNpy = (m: Mat): NdArray => f32(Float32Array.from(m.data), [m.rows, m.cols]);

/** Writes named arrays into the workdir and lists them as the stage's output files. */
async function outputs(ctx: StageContext, arrays: Record<string, NdArray>): Promise<StageResult['files']> {
  const files: StageResult['files'] = [];
  for (const [name, arr] of Object.entries(arrays)) {
    const path = join(ctx.workdir, name);
    await writeNpy(path, arr);
    files.push({ path: name, fromFile: path });
  }
  return files;
}

/**
 * seed: the random-ReLU map's (absent for CLIP, which draws nothing); input stored: the image set's stored-size
 * images (data.clipInput), not the resized ones.
 */
const featuresConfig = z.object({
  seed: z.number().int().default(0),
  model: z.unknown(),
  input: z.literal('stored').optional(),
});

/** The extractor a stage's config names, with the imported CLIP weights when it is CLIP (input 'clip'). */
export async function featureExtractor(
  ctx: StageContext,
  model: ImageFeatureConfig,
  image: { height: number; width: number },
  seed: number,
): Promise<ImageFeatureExtractor> {
  const clip = ctx.inputs.clip ? await readWeightsFile(weightsFileIn(await ctx.inputDir('clip'))) : undefined;
  return createImageFeatureExtractor(model, image, seed, clip);
}

/**
 * Frozen image features (CLIP, or the miniature's random-ReLU map) of an image set's training and test images
 * (the `images` stage), with the set's stimulus ids beside them.
 */
export const featuresStage: StageImpl = {
  // 2: reads the image set (input `images`) and writes its stimuli.json beside the features
  codeVersion: '2',
  async run(ctx, raw) {
    const cfg = stageConfig(featuresConfig, raw, ctx.stage);
    const dir = await ctx.inputDir('images');
    const files =
      cfg.input === 'stored' ? STORED_IMAGE_FILES : { train: 'train_images.npy', test: 'test_images.npy' };
    const train = await readImages(join(dir, files.train));
    const test = await readImages(join(dir, files.test));
    const extractor = await featureExtractor(ctx, cfg.model as ImageFeatureConfig, train, cfg.seed);
    try {
      const a = await extractor.extract(train);
      const b = await extractor.extract(test);
      const dim = a.length / train.count;
      return {
        files: [
          ...(await outputs(ctx, {
            'features_train.npy': f32(a, [train.count, dim]),
            'features_test.npy': f32(b, [test.count, dim]),
          })),
          { path: STIMULI_FILE, fromFile: join(dir, STIMULI_FILE) },
        ],
        summary: { dim },
      };
    } finally {
      extractor.dispose();
    }
  },
};

async function readStimuli(dir: string): Promise<StimuliFile> {
  const path = join(dir, STIMULI_FILE);
  try {
    return JSON.parse(await readFile(path, 'utf8')) as StimuliFile;
  } catch (err) {
    throw new BadInputError(`${path}: cannot read the stimulus ids (${(err as Error).message})`);
  }
}

/**
 * The image set's features in a subject's row order (prepared's stimuli.json): what the ridge maps, encoding
 * and the metrics pair with the subject's fMRI rows. A copy of rows, so the features themselves are computed
 * once per image set.
 */
export const subjectFeaturesStage: StageImpl = {
  codeVersion: '1',
  async run(ctx) {
    const setDir = await ctx.inputDir('features');
    const rows = new Map<string, Float32Array>();
    const set = await readStimuli(setDir);
    let dim = 0;
    for (const split of ['train', 'test'] as const) {
      const a = await readNpy(join(setDir, `features_${split}.npy`));
      dim = a.shape[1]!;
      set[split].forEach((id, i) => rows.set(id, (a.data as Float32Array).subarray(i * dim, (i + 1) * dim)));
    }
    const subject = await readStimuli(await ctx.inputDir('prepared'));
    const gather = (ids: string[]) => {
      const out = new Float32Array(ids.length * dim);
      ids.forEach((id, i) => {
        const row = rows.get(id);
        if (!row) throw new BadInputError(`stage '${ctx.stage}': stimulus '${id}' is not in the image set`);
        out.set(row, i * dim);
      });
      return f32(out, [ids.length, dim]);
    };
    return {
      files: await outputs(ctx, {
        'features_train.npy': gather(subject.train),
        'features_test.npy': gather(subject.test),
      }),
      summary: { dim },
    };
  },
};

/** Runs the autoencoder's encoder over rows of fMRI, a batch at a time. */
async function encodeRows(
  ae: Awaited<ReturnType<typeof loadFmriAutoencoder>>,
  fmri: NdArray,
  signal: AbortSignal,
): Promise<NdArray> {
  const [n, k] = fmri.shape as [number, number];
  const data = fmri.data as Float32Array;
  let out = new Float32Array(0);
  await forEachChunk(
    n,
    ROWS_PER_FORWARD,
    (r, b) => {
      const z = tidyValues(() => ae.encode(tf.tensor2d(data.subarray(r * k, (r + b) * k), [b, k])));
      if (r === 0) out = new Float32Array(n * (z.length / b));
      out.set(z, r * (z.length / b));
    },
    signal,
  );
  return f32(out, [n, out.length / n]);
}

/** The fMRI latents z of the training and test fMRI (encoder in eval mode: no voxel dropout). */
export const latentsStage: StageImpl = {
  codeVersion: '1',
  async run(ctx) {
    const dir = await ctx.inputDir('prepared');
    const ae = await loadFmriAutoencoder(join(await ctx.inputDir('ae'), 'model.safetensors'));
    try {
      const train = await encodeRows(ae, await readNpy(join(dir, 'train_fmri.npy')), ctx.signal);
      const test = await encodeRows(ae, await readNpy(join(dir, 'test_fmri.npy')), ctx.signal);
      return {
        files: await outputs(ctx, { 'latents_train.npy': train, 'latents_test.npy': test }),
        summary: { dim: train.shape[1]! },
      };
    } finally {
      ae.dispose();
    }
  },
};

const ridgeConfig = z.object({
  ridgeAlpha: z.number(),
  cvAlphas: z.array(z.number()).optional(),
  cvFolds: z.number().int(),
});

async function fitMap(
  x: Mat,
  y: Mat,
  fitIntercept: boolean,
  cfg: z.infer<typeof ridgeConfig>,
): Promise<RidgeModel> {
  const alpha = cfg.cvAlphas
    ? (await selectAlpha(x, y, { alphas: cfg.cvAlphas, folds: cfg.cvFolds, fitIntercept })).alpha
    : cfg.ridgeAlpha;
  return fitRidge(x, y, { alpha, fitIntercept });
}

/**
 * Both maps on the training pairs: decoding z→φ without intercept, encoding φ→z with intercept. The decoded
 * test features are re-normalised to the training features' statistics here; encoding does the same to
 * its latents in the encode stage.
 */
export const ridgeStage: StageImpl = {
  // 2: float64 arithmetic by TensorFlow's kernels on the native backend (lib/alignment/float64-ops.ts): results
  //    move in the last bits of float64
  codeVersion: '2',
  async run(ctx, raw) {
    const cfg = stageConfig(ridgeConfig, raw, ctx.stage);
    const lat = await ctx.inputDir('latents');
    const feat = await ctx.inputDir('features');
    const zTrain = matFromNdArray(await readNpy(join(lat, 'latents_train.npy')), 'latents_train');
    const zTest = matFromNdArray(await readNpy(join(lat, 'latents_test.npy')), 'latents_test');
    const phiTrain = matFromNdArray(await readNpy(join(feat, 'features_train.npy')), 'features_train');
    const decoding = await fitMap(zTrain, phiTrain, false, cfg);
    const encoding = await fitMap(phiTrain, zTrain, true, cfg);
    const decoded = renormalise(await predictRidge(decoding, zTest), phiTrain);
    const intercept = (m: RidgeModel) => f32(Float32Array.from(m.intercept), [m.intercept.length]);
    return {
      files: await outputs(ctx, {
        'decoding_coef.npy': matToNpy(decoding.coef),
        'encoding_coef.npy': matToNpy(encoding.coef),
        'encoding_intercept.npy': intercept(encoding),
        'decoded_features_test.npy': matToNpy(decoded),
      }),
      summary: { decodingAlpha: decoding.alpha, encodingAlpha: encoding.alpha },
    };
  },
};

const decodeConfig = z.object({
  seed: z.number().int(),
  steps: z.number().int(),
  samples: z.number().int(),
  choiceTemperature: z.number(),
});

/** MaskGIT sampling conditioned on the decoded features: `samples` images per test fMRI (spec §3). */
export const decodeStage: StageImpl = {
  // 2: MaskGIT and the tokenizer decoder run ROWS_PER_FORWARD rows at a time (float rounding may differ).
  // 3: MaskGIT's blocks as plain ops, query, key and value by separate products (rounding differs).
  codeVersion: '3',
  async run(ctx, raw) {
    const cfg = stageConfig(decodeConfig, raw, ctx.stage);
    const decodedFeatures = await readNpy(join(await ctx.inputDir('ridge'), 'decoded_features_test.npy'));
    const [items, dim] = decodedFeatures.shape as [number, number];
    const test = await readImages(join(await ctx.inputDir('prepared'), 'test_images.npy'));
    const maskgit = await loadMaskGit(join(await ctx.inputDir('maskgit'), 'model.safetensors'));
    const tokenizer = await loadImageTokenizer(join(await ctx.inputDir('tokenizer'), 'model.safetensors'));
    try {
      const rows = items * cfg.samples;
      // Every sample of an item gets the same conditioning; the seeded draws make them differ.
      const features = repeatForSamples(decodedFeatures.data as Float32Array, items, dim, cfg.samples);
      const { length, codes, featureDim } = maskgit.cfg;
      let step = 0;
      const result = await maskgitDecode({
        logits: async (tokens) => {
          const logits = new Float32Array(rows * length * codes);
          await forEachChunk(
            rows,
            ROWS_PER_FORWARD,
            (r, b) => {
              const ids = tokens.subarray(r * length, (r + b) * length);
              const cond = features.subarray(r * featureDim, (r + b) * featureDim);
              logits.set(maskgit.logits(ids, cond, b), r * length * codes);
            },
            ctx.signal,
          );
          ctx.heartbeat({ step: ++step, totalSteps: cfg.steps });
          return logits;
        },
        rows,
        length,
        vocab: codes,
        maskId: maskgit.maskId,
        rng: new Rng(cfg.seed, 'decode'),
        steps: cfg.steps,
        choiceTemperature: cfg.choiceTemperature,
      });
      const px = test.height * test.width * 3;
      const pixels = new Float32Array(rows * px);
      // the VQGAN decoder's activations grow with the image: fewer rows per forward for big images, so one
      // forward never holds the event loop (heartbeats) for long on a CPU worker
      const imagesPerForward = Math.max(1, Math.min(ROWS_PER_FORWARD, Math.floor(DECODE_PIXELS / (px / 3))));
      await forEachChunk(
        rows,
        imagesPerForward,
        (r, b) => {
          const ids = result.tokens.subarray(r * length, (r + b) * length);
          pixels.set(tokenizer.decode(ids, b, test.height, test.width), r * px);
        },
        ctx.signal,
      );
      const images = new Uint8Array(pixels.length);
      for (let i = 0; i < pixels.length; i++)
        images[i] = Math.round(Math.min(1, Math.max(0, pixels[i]!)) * 255);
      return {
        files: await outputs(ctx, {
          'samples.npy': {
            dtype: 'uint8',
            shape: [items, cfg.samples, test.height, test.width, 3],
            data: images,
          },
        }),
        summary: { items, samples: cfg.samples },
      };
    } finally {
      maskgit.dispose();
      tokenizer.dispose();
    }
  },
};

const summaryOf = (ctx: StageContext, input: string) =>
  (ctx.inputs[input]?.meta.summary ?? {}) as Record<string, number | string>;

/** Image → feature → encoding ridge → re-normalised latent → autoencoder decoder → voxels (spec §1 stage 5). */
export const encodeStage: StageImpl = {
  // 2: the encoding map's product in float64 by TensorFlow's kernels (as the ridge stage's 2)
  codeVersion: '2',
  async run(ctx) {
    const ridge = await ctx.inputDir('ridge');
    const coef = matFromNdArray(await readNpy(join(ridge, 'encoding_coef.npy')), 'encoding_coef');
    const intercept = Float64Array.from(
      (await readNpy(join(ridge, 'encoding_intercept.npy'))).data as Float32Array,
    );
    const phiTest = matFromNdArray(
      await readNpy(join(await ctx.inputDir('features'), 'features_test.npy')),
      'features_test',
    );
    const zTrain = matFromNdArray(
      await readNpy(join(await ctx.inputDir('latents'), 'latents_train.npy')),
      'latents_train',
    );
    const ae = await loadFmriAutoencoder(join(await ctx.inputDir('ae'), 'model.safetensors'));
    try {
      const encoded = await encodeFeatures(phiTest, {
        map: { coef, intercept, alpha: Number(summaryOf(ctx, 'ridge').encodingAlpha), fitIntercept: true },
        latentTrain: zTrain,
        decode: async (latents, rows) =>
          tidyValues(() => ae.decode(tf.tensor2d(latents, [rows, zTrain.cols]))),
      });
      return {
        files: await outputs(ctx, {
          'predicted_fmri_test.npy': f32(encoded.voxels, [phiTest.rows, encoded.voxelCount]),
        }),
        summary: { items: phiTest.rows, voxels: encoded.voxelCount },
      };
    } finally {
      ae.dispose();
    }
  },
};
