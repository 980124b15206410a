/**
 * The frozen image-feature extractor that conditions MaskGIT and defines the alignment target (spec §2.3).
 * The paper's is open_clip ViT-H/14 (1024-d, L2-normalised), imported with `lea weights import --kind
 * openclip-vit-h14` and run through lib/models/vit.ts with open_clip's eval preprocessing.
 * Miniature runs use spec §7's seeded random-feature map φ(img) = L2-normalise(W₂·ReLU(W₁·vec(img))).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import type { ImageBatch, ImportedWeights } from './types.js';
import { VisionTransformer, parseVitConfig } from './vit.js';

export type { ImageBatch } from './types.js';

export interface ImageFeatureExtractor {
  readonly name: string;
  readonly dim: number;
  /** L2-normalised features, [count, dim] row-major. Yields to the event loop between chunks. */
  extract(images: ImageBatch): Promise<Float32Array>;
  dispose(): void;
}

export type ImageFeatureConfig =
  { kind: 'clip'; weights: string; dim: number } | { kind: 'random-relu'; dim: number; hidden: number };

/** Images per matmul: bounds the [chunk, H·W·3] float copy. */
const CHUNK = 256;

/**
 * φ(img) = L2-normalise(W₂·ReLU(W₁·x)), x = vec(img)/255 − 0.5 (centred, so that φ is not blind to a uniform
 * shift of brightness: with no biases, φ is invariant to positive scaling of x). W₁ ~ N(0, 2/in) and
 * W₂ ~ N(0, 1/hidden), drawn from the Rng stream 'image-features' of `seed`; the hidden width is the config's.
 */
export class RandomReluFeatures implements ImageFeatureExtractor {
  readonly name = 'random-relu';
  private readonly w1: tf.Tensor2D;
  private readonly w2: tf.Tensor2D;
  private readonly inputs: number;

  constructor(
    readonly dim: number,
    hidden: number,
    readonly height: number,
    readonly width: number,
    seed: number,
  ) {
    this.inputs = height * width * 3;
    const rng = new Rng(seed, 'image-features');
    this.w1 = tf.tensor2d(
      rng.fillNormal(new Float32Array(this.inputs * hidden), 0, Math.sqrt(2 / this.inputs)),
      [this.inputs, hidden],
    );
    this.w2 = tf.tensor2d(rng.fillNormal(new Float32Array(hidden * dim), 0, Math.sqrt(1 / hidden)), [
      hidden,
      dim,
    ]);
  }

  async extract(images: ImageBatch): Promise<Float32Array> {
    if (images.height !== this.height || images.width !== this.width) {
      throw new BadInputError(
        `image features were built for ${this.height}x${this.width} images, got ${images.height}x${images.width}`,
      );
    }
    const out = new Float32Array(images.count * this.dim);
    for (let start = 0; start < images.count; start += CHUNK) {
      const n = Math.min(CHUNK, images.count - start);
      const x = new Float32Array(n * this.inputs);
      const src = images.data.subarray(start * this.inputs, (start + n) * this.inputs);
      for (let i = 0; i < x.length; i++) x[i] = (src[i] as number) / 255 - 0.5;
      const feats = tf.tidy(() => {
        const h = tf.relu(tf.matMul(tf.tensor2d(x, [n, this.inputs]), this.w1));
        const f = tf.matMul(h, this.w2);
        return tf.div(f, tf.maximum(tf.norm(f, 'euclidean', 1, true), 1e-12));
      });
      out.set(await feats.data(), start * this.dim);
      feats.dispose();
    }
    return out;
  }

  dispose(): void {
    tf.dispose([this.w1, this.w2]);
  }
}

/** open_clip's image tower from imported weights: its own preprocessing, L2-normalised output. */
class ClipFeatures implements ImageFeatureExtractor {
  readonly name = 'clip';
  private readonly vit: VisionTransformer;

  constructor(
    readonly dim: number,
    weights: ImportedWeights,
  ) {
    const cfg = parseVitConfig(weights.record.config, weights.path);
    if (weights.record.kind !== 'openclip-vit-h14' || cfg.outDim !== dim || !cfg.l2Normalize) {
      throw new BadInputError(
        `models.imageFeatures: weights '${weights.record.name}' (${weights.record.kind}, ${cfg.outDim}-d) are not ` +
          `an open_clip image tower with ${dim}-d L2-normalised output`,
      );
    }
    this.vit = new VisionTransformer(cfg, weights.tensors, weights.path);
  }

  async extract(images: ImageBatch): Promise<Float32Array> {
    return (await this.vit.run(images)).data as Float32Array;
  }

  dispose(): void {
    this.vit.dispose();
  }
}

/** The extractor a config names; CLIP needs the imported weights the stage received as an input. */
export function createImageFeatureExtractor(
  cfg: ImageFeatureConfig,
  image: { height: number; width: number },
  seed: number,
  clip?: ImportedWeights,
): ImageFeatureExtractor {
  if (cfg.kind === 'random-relu')
    return new RandomReluFeatures(cfg.dim, cfg.hidden, image.height, image.width, seed);
  if (!clip)
    throw new BadInputError(
      `models.imageFeatures: the CLIP weights '${cfg.weights}' were not given to this stage`,
    );
  return new ClipFeatures(cfg.dim, clip);
}

/** Mirrors images left-right (the MaskGIT stage's random horizontal flip), into a new buffer. */
export function flipHorizontal(images: ImageBatch): ImageBatch {
  const { count, height, width } = images;
  const data = new Uint8Array(images.data.length);
  const row = width * 3;
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < height; y++) {
      const base = (n * height + y) * row;
      for (let x = 0; x < width; x++) {
        const from = base + x * 3;
        const to = base + (width - 1 - x) * 3;
        data[to] = images.data[from] as number;
        data[to + 1] = images.data[from + 1] as number;
        data[to + 2] = images.data[from + 2] as number;
      }
    }
  }
  return { data, count, height, width };
}
