/**
 * Every metric of a run (spec §5, scaled as §7 says; names and definitions in lib/metrics/definitions.ts):
 * decoding metrics of the decoded samples (lib/metrics/decoding.ts), with the paper's networks when the
 * config's `metrics` section names imported weights, feature-level rows around the ridge with the
 * reference ridge from voxels (lib/metrics/alignment.ts), and encoding metrics on the predicted test fMRI.
 * The stage summary holds the values (what regression verdicts compare) and, under `intervals`, each item-mean
 * metric's bootstrap interval (lib/metrics/intervals.ts); metrics.json adds min, max, chance and the interval
 * for the report; scores.json keeps every item's score of every sample, keyed by the prepare stage's test item
 * ids, so a later interval or paired test needs no re-run.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { STIMULI_FILE, type StimuliFile } from '../../lib/data/prepare.js';
import { yieldToEventLoop } from '../../lib/compute/event-loop.js';
import { alignmentMetrics } from '../../lib/metrics/alignment.js';
import { itemsFrom, type MetricResult } from '../../lib/metrics/common.js';
import { decodingMetrics, type MetricRow, type PaperNetworks } from '../../lib/metrics/decoding.js';
import { METRIC_NETWORKS } from '../../lib/metrics/definitions.js';
import { describeIntervals, intervalSummary, metricIntervals } from '../../lib/metrics/intervals.js';
import { SCORES_FILE, type ScoresFile } from '../../lib/metrics/scores.js';
import {
  encodingTwoWay,
  meanSquaredError,
  perSamplePearson,
  perVoxelPearson,
} from '../../lib/metrics/encoding.js';
import { Lpips } from '../../lib/metrics/lpips.js';
import type { ImageFeatureConfig } from '../../lib/models/image-features.js';
import { eventFile, eventFileName } from '../../lib/report/tensorboard.js';
import { readNpy } from '../../lib/tensors/npy.js';
import type { Network } from '../../lib/weights/kind.js';
import { weightKind } from '../../lib/weights/kinds/index.js';
import { readWeightsFile, weightsFileIn } from '../../lib/weights/import.js';
import { stageConfig, type StageContext, type StageImpl } from '../stage-contract.js';
import { FID_RESIZES, type FidResize } from '../../lib/config/choice-values.js';
import { featureExtractor, readImages } from './alignment.js';

const metricsConfig = z.object({
  /** The run's seed: the miniature's random feature map φ. */
  seed: z.number().int(),
  /** The n-way trials' distractors and the bootstrap (absent: seed); a seed suite of scope sampling varies it. */
  samplingSeed: z.number().int().optional(),
  /** The image features φ (models.imageFeatures) the stand-in metrics use, as the features stage made them. */
  imageFeatures: z.unknown(),
  alignment: z.object({
    ridgeAlpha: z.number(),
    cvAlphas: z.array(z.number()).optional(),
    cvFolds: z.number().int(),
  }),
  intervals: z.object({
    method: z.enum(['percentile', 'bca']),
    resamples: z.number().int().min(1),
    level: z.number().gt(0).lt(1),
  }),
  /** decode.fid's resize (metrics.fidResize); present when the config imports the Inception network. */
  fidResize: z.enum(FID_RESIZES).optional(),
});

/** The imported Inception's output (lib/weights/kinds/fid-inception-v3.ts) for each FID resize. */
const FID_FEATURES: Record<FidResize, string> = { antialias: 'features', tf1: 'features-tf1' };

/** The run's metrics as TensorBoard scalars at step 0 (`metrics/<name>`), so runs compare side by side there. */
function metricScalars(rows: MetricRow[], wallTime: number) {
  return rows
    .filter((r) => Number.isFinite(r.value))
    .map((r) => ({ tag: `metrics/${r.name}`, step: 0, value: r.value, wallTime }));
}

async function weightsInput(ctx: StageContext, input: keyof typeof METRIC_NETWORKS) {
  if (!ctx.inputs[input]) return undefined;
  return readWeightsFile(weightsFileIn(await ctx.inputDir(input)), METRIC_NETWORKS[input].kind);
}

/** The imported networks the stage was given, built; `owned` collects what to dispose. */
async function paperNetworks(
  ctx: StageContext,
  owned: { dispose(): void }[],
  fidResize: FidResize | undefined,
): Promise<PaperNetworks> {
  const out: PaperNetworks = {};
  const build = async (input: 'classifier' | 'clipMetric' | 'inception', output: string) => {
    const w = await weightsInput(ctx, input);
    if (!w) return undefined;
    const net: Network = weightKind(w.record.kind).build!(w.tensors, w.record.config);
    owned.push(net);
    return net.outputs[output];
  };
  out.classifier = await build('classifier', 'logits');
  out.clip = await build('clipMetric', 'features');
  if (fidResize) out.inception = await build('inception', FID_FEATURES[fidResize]);
  const backbone = await weightsInput(ctx, 'lpipsBackbone');
  const heads = await weightsInput(ctx, 'lpipsHeads');
  if (backbone && heads) {
    out.lpips = new Lpips(backbone.tensors, heads.tensors, `${backbone.record.name} + ${heads.record.name}`);
    owned.push(out.lpips);
  }
  return out;
}

export const metricsStage: StageImpl = {
  // 2: paper networks, stand-ins renamed, prototypes from training images only, measured chance, ref rows.
  // 3: per-item scores (scores.json) and bootstrap intervals. 4: mse and snr 2-way on wrapped uint8 too; FID
  // resized as metrics.fidResize says. 5: its feature-level ridges in float64 by TensorFlow's kernels.
  codeVersion: '5',
  async run(ctx, raw) {
    const { seed, samplingSeed, alignment, imageFeatures, intervals, fidResize } = stageConfig(
      metricsConfig,
      raw,
      ctx.stage,
    );
    const trialSeed = samplingSeed ?? seed;
    const prepared = await ctx.inputDir('prepared');
    const npy = async (input: string, file: string) => readNpy(join(await ctx.inputDir(input), file));
    const gt = await readImages(join(prepared, 'test_images.npy'));
    const samples = await npy('decode', 'samples.npy');
    const phi = await featureExtractor(ctx, imageFeatures as ImageFeatureConfig, gt, seed);
    const owned: { dispose(): void }[] = [phi];
    const rows: MetricRow[] = [];
    try {
      const labels = await readNpy(join(prepared, 'train_labels.npy')).then(
        (a) => Array.from({ length: a.shape[0]! }, (_, i) => Number(a.data[i * 2 + 1])),
        () => undefined, // datasets without category labels (BOLD5000) have no prototypes
      );
      rows.push(
        ...(await decodingMetrics({
          groundTruth: gt,
          samples: { data: samples.data as Uint8Array, perItem: samples.shape[1]! },
          phi,
          ...(labels && {
            prototypes: { images: await readImages(join(prepared, 'train_images.npy')), labels },
          }),
          networks: await paperNetworks(ctx, owned, fidResize),
          seed: trialSeed,
          afterSample: async (step, totalSteps) => {
            ctx.heartbeat({ step, totalSteps });
            await yieldToEventLoop(ctx.signal);
          },
        })),
      );
    } finally {
      for (const o of owned) o.dispose();
    }
    rows.push(
      ...(await alignmentMetrics({
        latentsTrain: await npy('latents', 'latents_train.npy'),
        latentsTest: await npy('latents', 'latents_test.npy'),
        phiTrain: await npy('features', 'features_train.npy'),
        phiTest: await npy('features', 'features_test.npy'),
        voxelsTrain: await readNpy(join(prepared, 'train_fmri.npy')),
        voxelsTest: await readNpy(join(prepared, 'test_fmri.npy')),
        decoded: await npy('ridge', 'decoded_features_test.npy'),
        alignment,
      })),
    );

    const measured = itemsFrom(await readNpy(join(prepared, 'test_fmri.npy')), 'test_fmri');
    const predicted = itemsFrom(await npy('encode', 'predicted_fmri_test.npy'), 'predicted_fmri_test');
    const add = (name: string, r: MetricResult) =>
      rows.push({ name, value: r.value, chance: r.chance, ...(r.perItem ? { perItem: [r.perItem] } : {}) });
    add('encode.pearson', perSamplePearson(predicted, measured));
    add('encode.pearson_voxel', perVoxelPearson(predicted, measured));
    add('encode.mse', meanSquaredError(predicted, measured));
    add('encode.twoway', encodingTwoWay(predicted, measured));
    const bounds = metricIntervals(rows, intervals, trialSeed);
    const stimuli = JSON.parse(await readFile(join(prepared, STIMULI_FILE), 'utf8')) as StimuliFile;
    const scores: ScoresFile = {
      items: stimuli.test,
      scores: Object.fromEntries(rows.filter((r) => r.perItem).map((r) => [r.name, r.perItem!])),
    };
    const now = Date.now() / 1000;
    const table = rows.map(({ perItem: _, ...r }) => {
      const b = bounds[r.name];
      return b ? { ...r, low: b[0], high: b[1] } : r;
    });
    return {
      files: [
        { path: 'metrics.json', bytes: Buffer.from(JSON.stringify(table, null, 2)) },
        { path: SCORES_FILE, bytes: Buffer.from(JSON.stringify(scores)) },
        { path: eventFileName(now), bytes: eventFile(metricScalars(rows, now)) },
      ],
      summary: {
        ...Object.fromEntries(rows.map((r) => [r.name, r.value])),
        ...intervalSummary(bounds, describeIntervals(intervals, trialSeed)),
      },
    };
  },
};
