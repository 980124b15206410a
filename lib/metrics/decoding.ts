/**
 * Every decoding metric of spec §5 over the decoded samples of a run: each computed per sample index, then
 * mean, min and max over the samples. The paper's metrics are computed only with the paper's networks
 * (imported); without them the miniature's stand-ins are computed under names of their own (definitions.ts).
 *
 * The stand-in n-way classifier (spec §7 "pretrained classifier"): softmax(τ·cos(φ(img), class mean of φ)),
 * class means over the training images only (a test image in its own prototype would make the "classifier" a
 * feature identification), τ = 20 (our choice: sharp, not one-hot). c* is the classifier's argmax on the
 * ground truth, as in the authors' helper.
 *
 * Reference rows: every n-way and feature 2-way score once more on a shuffled pairing (sample i against the
 * ground truth of item σ(i), one seeded derangement), which must land near chance.
 */
import { yieldToEventLoop } from '../compute/event-loop.js';
import { Rng } from '../compute/rng.js';
import type { ImageFeatureExtractor } from '../models/image-features.js';
import type { ImageBatch } from '../models/types.js';
import type { NdArray } from '../tensors/ndarray.js';
import { itemsOf, overSamples, type Items, type MetricResult } from './common.js';
import { frechetDistance } from './fid.js';
import { featureTwoWay, twoWayFromMatrix, twoWayIdentification } from './identification.js';
import type { Lpips } from './lpips.js';
import { argmaxRows, drawDistractors, nWayTop1, PAPER_NWAY } from './nway.js';
import { ssimPerImage, ssimStack } from './ssim.js';

const TAU = 20;
/** The miniature's n-way sizes (spec §7): 5 and every class; 50 where there are that many. */
const PROTO_NWAYS = [5, 50];

export interface MetricRow {
  name: string;
  value: number;
  min?: number;
  max?: number;
  chance: number | null;
  /** Item-mean metrics: each item's score, [samples][items] (one sample for metrics of no decoded sample). */
  perItem?: number[][];
}

/** An image network's output for a batch: [N, D] rows. */
export type ImageNet = (images: ImageBatch) => Promise<NdArray>;

/** The paper's networks (spec §5), each present only when imported and named in the config's `metrics`. */
export interface PaperNetworks {
  /** torchvision ViT-H/14 logits over 1000 ImageNet classes. */
  classifier?: ImageNet;
  /** open_clip ViT-H/14 image features. */
  clip?: ImageNet;
  lpips?: Lpips;
  /** torch-fidelity InceptionV3, 64-d FID features. */
  inception?: ImageNet;
}

export interface DecodingInput {
  /** The test stimuli, uint8 [N, H, W, 3]. */
  groundTruth: ImageBatch;
  /** uint8 [N, S, H, W, 3] */
  samples: { data: Uint8Array; perItem: number };
  /** The pipeline's image features φ (stand-in metrics). */
  phi: ImageFeatureExtractor;
  /** Category labels of the training images: the stand-in classifier's prototypes. */
  prototypes?: { images: ImageBatch; labels: number[] };
  networks: PaperNetworks;
  seed: number;
  /** n-way trials (spec: 1000). */
  trials?: number;
  /** Called after each sample (progress; the stage yields to the event loop there). */
  afterSample?: (done: number, total: number) => Promise<void>;
}

const rowsOf = (a: NdArray | Float32Array, n: number): Items => {
  const data = Float64Array.from(a instanceof Float32Array ? a : (a.data as ArrayLike<number>));
  return itemsOf(data, n, [data.length / n]);
};

/** Row-wise softmax in float64. */
export function softmaxRows(logits: Items): Items {
  const out = new Float64Array(logits.data.length);
  for (let i = 0; i < logits.count; i++) {
    const row = logits.data.subarray(i * logits.size, (i + 1) * logits.size);
    const max = Math.max(...row);
    let total = 0;
    for (let c = 0; c < row.length; c++) total += out[i * logits.size + c] = Math.exp(row[c]! - max);
    for (let c = 0; c < row.length; c++) out[i * logits.size + c]! /= total;
  }
  return itemsOf(out, logits.count, logits.itemShape);
}

function unitRows(x: Items): Items {
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < x.count; i++) {
    let s = 0;
    for (let j = 0; j < x.size; j++) s += x.data[i * x.size + j]! ** 2;
    const inv = 1 / Math.sqrt(s || 1);
    for (let j = 0; j < x.size; j++) out[i * x.size + j] = x.data[i * x.size + j]! * inv;
  }
  return itemsOf(out, x.count, x.itemShape);
}

/** The stand-in classifier: probabilities from τ·cosine to unit class-mean features (training images only). */
export function prototypeClassifier(trainFeatures: Items, labels: number[]): (features: Items) => Items {
  const classes = Math.max(...labels) + 1;
  const d = trainFeatures.size;
  const sums = new Float64Array(classes * d);
  labels.forEach((c, i) => {
    for (let j = 0; j < d; j++) sums[c * d + j]! += trainFeatures.data[i * d + j]!;
  });
  const means = unitRows(itemsOf(sums, classes, [d]));
  return (features) => {
    const f = unitRows(features);
    const logits = new Float64Array(f.count * classes);
    for (let i = 0; i < f.count; i++)
      for (let c = 0; c < classes; c++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += f.data[i * d + j]! * means.data[c * d + j]!;
        logits[i * classes + c] = TAU * dot;
      }
    return softmaxRows(itemsOf(logits, f.count, [classes]));
  };
}

/** A seeded derangement (Sattolo: one random cycle through all items, so no item keeps its own). */
export function derangement(n: number, rng: Rng): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.integer(0, i);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

const permuteRows = (x: Items, p: Int32Array): Items => {
  const out = new Float64Array(x.data.length);
  p.forEach((from, i) => out.set(x.data.subarray(from * x.size, (from + 1) * x.size), i * x.size));
  return itemsOf(out, x.count, x.itemShape);
};

/** Sample s of every item, [N, H, W, 3]. */
function sampleOf(input: DecodingInput, s: number): ImageBatch {
  const { groundTruth: gt, samples } = input;
  const px = gt.height * gt.width * 3;
  const data = new Uint8Array(gt.count * px);
  for (let i = 0; i < gt.count; i++) {
    const at = (i * samples.perItem + s) * px;
    data.set(samples.data.subarray(at, at + px), i * px);
  }
  return { ...gt, data };
}

/** The stream of an n-way metric's distractor draws for sample s (a test replays them in a reference). */
export function nWayRng(seed: number, metric: string, sample: number): Rng {
  return new Rng(seed, `${metric}/${sample}`);
}

/** A classifier's n-way scorer: c* from the ground truths, and the same score on a shuffled pairing. */
interface NWayScorer {
  name: string;
  n: number;
  probs: (images: ImageBatch, features: Items) => Promise<Items>;
  target: Int32Array;
}

export async function decodingMetrics(input: DecodingInput): Promise<MetricRow[]> {
  const { groundTruth: gt, networks, seed } = input;
  const n = gt.count;
  const trials = input.trials;
  const shuffle = derangement(n, new Rng(seed, 'metrics/shuffled-pairing'));
  const gtPixels = itemsOf(Float64Array.from(gt.data), n, [gt.height, gt.width, 3]);
  const gtPhi = rowsOf(await input.phi.extract(gt), n);
  const gtClip = networks.clip && rowsOf(await networks.clip(gt), n);
  const gtInception = networks.inception && rowsOf(await networks.inception(gt), n);

  const scorers: NWayScorer[] = [];
  if (networks.classifier) {
    const classify = networks.classifier;
    const probs = async (images: ImageBatch) => softmaxRows(rowsOf(await classify(images), n));
    scorers.push({
      name: `decode.nway${PAPER_NWAY}`,
      n: PAPER_NWAY,
      probs,
      target: argmaxRows(await probs(gt)),
    });
  }
  if (input.prototypes) {
    const { images, labels } = input.prototypes;
    const classify = prototypeClassifier(rowsOf(await input.phi.extract(images), images.count), labels);
    const classes = Math.max(...labels) + 1;
    const target = argmaxRows(classify(gtPhi));
    for (const k of new Set([...PROTO_NWAYS.filter((k) => k < classes), classes]))
      scorers.push({ name: `decode.proto_nway${k}`, n: k, probs: async (_, f) => classify(f), target });
  }

  const per = new Map<string, MetricResult[]>();
  const push = (name: string, r: MetricResult) => per.set(name, [...(per.get(name) ?? []), r]);
  const count = input.samples.perItem;
  for (let s = 0; s < count; s++) {
    const images = sampleOf(input, s);
    const pixels = itemsOf(Float64Array.from(images.data), n, gtPixels.itemShape);
    // each measure compares every item pair over every pixel (seconds at 50 items of 256 px): the event loop
    // gets a turn between them, so the stage's heartbeats go out
    for (const measure of ['mse', 'pcc', 'snr', 'mse_uint8wrap', 'snr_uint8wrap'] as const) {
      push(`decode.twoway_${measure}`, twoWayIdentification(pixels, gtPixels, measure));
      await yieldToEventLoop();
    }
    push('decode.ssim', ssimStack(pixels, gtPixels));
    push('decode.ssim_mean', ssimPerImage(pixels, gtPixels));
    const phi = rowsOf(await input.phi.extract(images), n);
    push('decode.phi_twoway', featureTwoWay(phi, gtPhi));
    push('ref.shuffled.decode.phi_twoway', featureTwoWay(phi, permuteRows(gtPhi, shuffle)));
    push('decode.fid_phi', frechetDistance(gtPhi, phi));
    if (gtClip) {
      const clip = rowsOf(await networks.clip!(images), n);
      push('decode.clip_twoway', featureTwoWay(clip, gtClip));
      push('ref.shuffled.decode.clip_twoway', featureTwoWay(clip, permuteRows(gtClip, shuffle)));
    }
    if (networks.lpips)
      push('decode.twoway_psm', twoWayFromMatrix(await networks.lpips.matrix(images, gt), n, true));
    if (gtInception)
      push('decode.fid', frechetDistance(gtInception, rowsOf(await networks.inception!(images), n)));
    for (const c of scorers) {
      const probs = await c.probs(images, phi);
      const draws = drawDistractors(c.target, probs.size, { n: c.n, trials, rng: nWayRng(seed, c.name, s) });
      push(c.name, nWayTop1(probs, c.target, { n: c.n, draws }));
      const shuffled = c.target.map((_, i) => c.target[shuffle[i]!]!);
      push(
        `ref.shuffled.${c.name}`,
        nWayTop1(probs, shuffled, { n: c.n, trials, rng: new Rng(seed, `${c.name}/shuffled/${s}`) }),
      );
    }
    await input.afterSample?.(s + 1, count);
  }
  return [...per].map(([name, results]) => {
    const r = overSamples(results);
    return {
      name,
      value: r.value,
      min: r.min,
      max: r.max,
      chance: r.chance,
      ...(r.perItemBySample ? { perItem: r.perItemBySample } : {}),
    };
  });
}
