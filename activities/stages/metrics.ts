/**
 * Every metric of a run (spec §5, scaled as §7 says): decoding metrics per sample index, then mean, min and
 * max over the samples; encoding metrics on the predicted test fMRI. The stage summary holds the values
 * (what regression verdicts compare); metrics.json adds min, max and chance for the report.
 *
 * The n-way classifier (spec §7 "pretrained classifier"): softmax(τ·cosine(φ(img), class-mean φ)) over the
 * dataset's categories, class means taken over every ground-truth image of the subject (train and test), the
 * way an ImageNet classifier knows GOD's test classes. τ = 20 is our choice (a sharp but not one-hot softmax).
 * c* is the classifier's argmax on the ground-truth image, as in the authors' helper. n-way is scored for
 * n = 5, 50 (the paper's) and all classes, where the dataset has that many. Datasets without
 * category labels (BOLD5000) get no n-way score.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { Rng } from '../../lib/compute/rng.js';
import { yieldToEventLoop } from '../../lib/compute/event-loop.js';
import { overSamples, itemsFrom, itemsOf, type Items, type MetricResult } from '../../lib/metrics/common.js';
import {
  encodingTwoWay,
  meanSquaredError,
  perSamplePearson,
  perVoxelPearson,
} from '../../lib/metrics/encoding.js';
import { frechetDistance } from '../../lib/metrics/fid.js';
import { featureTwoWay, twoWayIdentification } from '../../lib/metrics/identification.js';
import { argmaxRows, nWayTop1 } from '../../lib/metrics/nway.js';
import { ssimPerImage, ssimStack } from '../../lib/metrics/ssim.js';
import { createImageFeatureExtractor, type ImageBatch } from '../../lib/models/image-features.js';
import { readNpy } from '../../lib/tensors/npy.js';
import { stageConfig, type StageImpl } from '../stage-runner.js';
import { readImages } from './alignment.js';

const TAU = 20;

export interface MetricRow {
  name: string;
  value: number;
  min?: number;
  max?: number;
  chance: number | null;
}

function l2rows(x: Float32Array, n: number): Float64Array {
  const d = x.length / n;
  const out = new Float64Array(x.length);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
    const inv = 1 / Math.sqrt(s || 1);
    for (let j = 0; j < d; j++) out[i * d + j] = x[i * d + j]! * inv;
  }
  return out;
}

/** Class probabilities [n, classes] from features, by cosine to the class means. */
function classify(features: Float32Array, n: number, means: Float64Array, classes: number): Items {
  const d = features.length / n;
  const f = l2rows(features, n);
  const out = new Float64Array(n * classes);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let c = 0; c < classes; c++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += f[i * d + j]! * means[c * d + j]!;
      out[i * classes + c] = TAU * dot;
      max = Math.max(max, TAU * dot);
    }
    let total = 0;
    for (let c = 0; c < classes; c++) total += out[i * classes + c] = Math.exp(out[i * classes + c]! - max);
    for (let c = 0; c < classes; c++) out[i * classes + c]! /= total;
  }
  return itemsOf(out, n, [classes]);
}

/** Unit-length mean feature of each category over the given images. */
function classMeans(features: Float32Array, categories: number[], classes: number): Float64Array {
  const n = categories.length;
  const d = features.length / n;
  const sums = new Float32Array(classes * d);
  categories.forEach((c, i) => {
    for (let j = 0; j < d; j++) sums[c * d + j]! += features[i * d + j]!;
  });
  return l2rows(sums, classes);
}

/** Sample s of every item, [items, H, W, 3], out of samples [items, count, H, W, 3]. */
function sampleOf(samples: Uint8Array, items: number, count: number, s: number, px: number): Uint8Array {
  const data = new Uint8Array(items * px);
  for (let i = 0; i < items; i++)
    data.set(samples.subarray((i * count + s) * px, (i * count + s + 1) * px), i * px);
  return data;
}

const metricsConfig = z.object({ seed: z.number().int() });

export const metricsStage: StageImpl = {
  codeVersion: '1',
  async run(ctx, raw) {
    const { seed } = stageConfig(metricsConfig, raw, ctx.stage);
    const prepared = await ctx.inputDir('prepared');
    const gt = await readImages(join(prepared, 'test_images.npy'));
    const samplesArr = await readNpy(join(await ctx.inputDir('decode'), 'samples.npy'));
    const [items, count] = samplesArr.shape as [number, number];
    const px = gt.height * gt.width * 3;
    const featureStage = ctx.inputs.features!.meta.config as { seed: number; model: never };
    const extractor = createImageFeatureExtractor(featureStage.model, gt, featureStage.seed);
    const rows: MetricRow[] = [];
    const add = (name: string, r: MetricResult & { min?: number; max?: number }) =>
      rows.push({
        name,
        value: r.value,
        chance: r.chance,
        ...(r.min !== undefined ? { min: r.min, max: r.max } : {}),
      });
    try {
      const gtItems = itemsFrom(await readNpy(join(prepared, 'test_images.npy')), 'test_images');
      const gtFeat = extractor.extract(gt);
      const gtFeatItems = itemsOf(Float64Array.from(gtFeat), items, [gtFeat.length / items]);
      const per: Record<string, MetricResult[]> = {};
      const push = (name: string, r: MetricResult) => (per[name] ??= []).push(r);

      let classifier: { probs: (f: Float32Array) => Items; target: Int32Array; classes: number } | undefined;
      const labelsOf = async (split: string) =>
        readNpy(join(prepared, `${split}_labels.npy`)).then(
          (a) => Array.from({ length: a.shape[0]! }, (_, i) => Number(a.data[i * 2 + 1])),
          () => undefined,
        );
      const trainCats = await labelsOf('train');
      const testCats = await labelsOf('test');
      if (trainCats && testCats) {
        const train = await readImages(join(prepared, 'train_images.npy'));
        const all = [...trainCats, ...testCats];
        const classes = Math.max(...all) + 1;
        const trainFeat = extractor.extract(train);
        const allFeat = new Float32Array(trainFeat.length + gtFeat.length);
        allFeat.set(trainFeat);
        allFeat.set(gtFeat, trainFeat.length);
        const means = classMeans(allFeat, all, classes);
        const probs = (f: Float32Array) => classify(f, items, means, classes);
        classifier = { probs, target: argmaxRows(probs(gtFeat)), classes };
      }

      for (let s = 0; s < count; s++) {
        const data = sampleOf(samplesArr.data as Uint8Array, items, count, s, px);
        const imgs: ImageBatch = { data, count: items, height: gt.height, width: gt.width };
        const predItems = itemsOf(Float64Array.from(data), items, gtItems.itemShape);
        push('decode.twoway_pcc', twoWayIdentification(predItems, gtItems, 'pcc'));
        push('decode.twoway_mse', twoWayIdentification(predItems, gtItems, 'mse'));
        push('decode.ssim', ssimPerImage(predItems, gtItems));
        push('decode.ssim_stack', ssimStack(predItems, gtItems));
        const feat = extractor.extract(imgs);
        const featItems = itemsOf(Float64Array.from(feat), items, gtFeatItems.itemShape);
        push('decode.feature_twoway', featureTwoWay(featItems, gtFeatItems));
        push('decode.fid', frechetDistance(gtFeatItems, featItems));
        if (classifier) {
          const probs = classifier.probs(feat);
          for (const n of new Set([5, 50, classifier.classes].filter((k) => k <= classifier!.classes))) {
            push(
              `decode.nway${n}`,
              nWayTop1(probs, classifier.target, { n, rng: new Rng(seed, `nway${n}/${s}`) }),
            );
          }
        }
        ctx.heartbeat({ step: s + 1, totalSteps: count });
        await yieldToEventLoop(ctx.signal);
      }
      for (const [name, results] of Object.entries(per)) add(name, overSamples(results));

      const measured = itemsFrom(await readNpy(join(prepared, 'test_fmri.npy')), 'test_fmri');
      const predicted = itemsFrom(
        await readNpy(join(await ctx.inputDir('encode'), 'predicted_fmri_test.npy')),
        'predicted_fmri_test',
      );
      add('encode.pearson', perSamplePearson(predicted, measured));
      add('encode.pearson_voxel', perVoxelPearson(predicted, measured));
      add('encode.mse', meanSquaredError(predicted, measured));
      add('encode.twoway', encodingTwoWay(predicted, measured));
    } finally {
      extractor.dispose();
    }
    return {
      files: [{ path: 'metrics.json', bytes: Buffer.from(JSON.stringify(rows, null, 2)) }],
      summary: Object.fromEntries(rows.map((r) => [r.name, r.value])),
    };
  },
};
