/**
 * Image tokenizers: images → a grid of code ids → images. Two implementations of one interface:
 *
 * - VqGan: MaskGIT's VQGAN as LEA ports it (spec §2.4; naiq/LEA src/unet_layers.py MaskGIT_Encoder/Decoder,
 *   ResnetBlock2, src/quantize.py MaskGIT_VectorQuantizer), parameterised by channel widths, levels and codebook
 *   size. The paper's is frozen ImageNet weights; a miniature trains here with reconstruction MSE plus the
 *   codebook and commitment losses (β = 0.25, MaskGIT_AE.yaml's code_beta). The GAN and LPIPS terms of that
 *   config are not part of this project's training.
 * - PatchTokenizer: spec §7's miniature — non-overlapping p×p patches, nearest of K codes fitted by k-means
 *   on the training patches; decoding is a lookup (spec §7's optional 3×3 smoothing is not applied).
 *
 * VqGan shapes (NHWC), paper sizes for 256 px input:
 *   encoder: conv_in 3×3 3→128 (no bias) [B,256,256,128]; levels ch·{1,1,2,2,4}, each numResBlocks residual
 *   blocks, 2×2 average pool after all but the last [B,16,16,512]; numResMids blocks; GN + swish; 1×1 conv → 256
 *   quantiser: nearest code (squared L2) of a 1024×256 codebook → ids [B,16,16]
 *   decoder: conv_in 3×3 256→512; mid blocks; levels with outputs 512,256,256,128,128, each followed (but the
 *   last) by nearest ×2 upsampling and a 3×3 conv; GN + swish; 3×3 conv → 3 channels [B,256,256,3]
 * Residual block: GN → swish → conv3×3 → GN → swish → conv3×3 (no biases); when the width changes, the skip is a
 * 1×1 conv of the branch output, not of the input (MaskGIT's quirk, kept). GroupNorm's epsilon is the config's
 * `numerics` (LEA's port 1e-5, MaskGIT's Flax 1e-6).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../compute/rng.js';
import { tidyValues } from '../compute/values.js';
import type { ImageBatch } from './types.js';
import { stopGradient } from './fused/op.js';
import { ParamBuilder, disposeParams, param, swish, type Params } from './layers.js';
import { MASKGIT_NUMERIC_VALUES, type MaskGitNumerics } from './maskgit-numerics.js';

export interface ImageTokenizer {
  readonly codes: number;
  /** Token grid [rows, cols] of an image of the given size. */
  grid(height: number, width: number): [number, number];
  /** Code ids [count, rows·cols], row-major over the grid. */
  encode(images: ImageBatch): Int32Array;
  /** Images [count, height, width, 3] in [0, 1] from code ids. */
  decode(ids: Int32Array, count: number, height: number, width: number): Float32Array;
  dispose(): void;
}

export interface VqGanConfig {
  chBase: number;
  chMult: number[];
  numResBlocks: number;
  numResMids: number;
  chLatent: number;
  codes: number;
  /** GroupNorm groups (32 in MaskGIT; a miniature needs fewer). */
  groups: number;
  /** Commitment weight β. */
  beta: number;
  /** Sets the GroupNorm epsilon (lib/models/maskgit-numerics.ts). */
  numerics: MaskGitNumerics;
}

/** uint8 images → float [B, H, W, 3] in [0, 1] (the VQGAN input range: no tanh, no centring). */
export function imagesToTensor(images: ImageBatch): tf.Tensor4D {
  const x = new Float32Array(images.data.length);
  for (let i = 0; i < x.length; i++) x[i] = (images.data[i] as number) / 255;
  return tf.tensor4d(x, [images.count, images.height, images.width, 3]);
}

export class VqGan implements ImageTokenizer {
  readonly params: Params;
  readonly codes: number;

  constructor(
    readonly cfg: VqGanConfig,
    rng: Rng,
  ) {
    this.codes = cfg.codes;
    const b = new ParamBuilder(rng);
    const { chBase: ch, chMult, numResBlocks, numResMids, chLatent } = cfg;
    // PyTorch's default conv init (kaiming_uniform_(a=√5)): weight and bias U(±1/√fan_in); the authors add none.
    const conv = (name: string, k: number, cin: number, cout: number, bias: boolean): void => {
      const bound = 1 / Math.sqrt(cin * k * k);
      b.uniform(`${name}.weight`, [k, k, cin, cout], -bound, bound);
      if (bias) b.uniform(`${name}.bias`, [cout], -bound, bound);
    };
    const norm = (name: string, c: number): void => {
      b.ones(`${name}.weight`, [c]);
      b.zeros(`${name}.bias`, [c]);
    };
    const block = (name: string, cin: number, cout: number): void => {
      norm(`${name}.norm1`, cin);
      conv(`${name}.conv1`, 3, cin, cout, false);
      norm(`${name}.norm2`, cout);
      conv(`${name}.conv2`, 3, cout, cout, false);
      if (cin !== cout) conv(`${name}.nin_shortcut`, 1, cout, cout, false);
    };
    const levels = chMult.length;
    conv('encoder.conv_in', 3, 3, ch, false);
    const inMult = [1, ...chMult];
    for (let i = 0; i < levels; i++) {
      let cin = ch * (inMult[i] as number);
      const cout = ch * (inMult[i + 1] as number);
      for (let j = 0; j < numResBlocks; j++) {
        block(`encoder.down.${i}.block.${j}`, cin, cout);
        cin = cout;
      }
    }
    const top = ch * (chMult[levels - 1] as number);
    for (let j = 0; j < numResMids; j++) block(`encoder.mid.${j}`, top, top);
    norm('encoder.norm_out', top);
    conv('encoder.conv_out', 1, top, chLatent, true);

    conv('decoder.conv_in', 3, chLatent, top, true);
    for (let j = 0; j < numResMids; j++) block(`decoder.mid.${j}`, top, top);
    const outMult = [...chMult, chMult[levels - 1] as number];
    for (let i = 0; i < levels; i++) {
      let cin = ch * (outMult[levels - i] as number);
      const cout = ch * (outMult[levels - i - 1] as number);
      for (let j = 0; j < numResBlocks; j++) {
        block(`decoder.up.${i}.block.${j}`, cin, cout);
        cin = cout;
      }
      if (i < levels - 1) conv(`decoder.up.${i}.upsample.conv`, 3, cout, cout, true);
    }
    norm('decoder.norm_out', ch * (chMult[0] as number));
    conv('decoder.conv_out', 3, ch * (chMult[0] as number), 3, true);
    b.uniform('quantizer.embedding.weight', [cfg.codes, chLatent], -1 / cfg.codes, 1 / cfg.codes);
    this.params = b.params;
  }

  /** Spatial reduction factor, 2^(levels−1). */
  get factor(): number {
    return 2 ** (this.cfg.chMult.length - 1);
  }

  grid(height: number, width: number): [number, number] {
    return [height / this.factor, width / this.factor];
  }

  private p(name: string): tf.Tensor {
    return param(this.params, name);
  }

  private groupNorm(x: tf.Tensor4D, name: string): tf.Tensor4D {
    const [b, h, w, c] = x.shape;
    const g = Math.min(this.cfg.groups, c);
    const grouped = tf.reshape(x, [b, h, w, g, c / g]);
    const { mean, variance } = tf.moments(grouped, [1, 2, 4], true);
    const normed = tf.reshape(
      tf.mul(
        tf.sub(grouped, mean),
        tf.rsqrt(tf.add(variance, MASKGIT_NUMERIC_VALUES[this.cfg.numerics].groupNormEps)),
      ),
      [b, h, w, c],
    );
    return tf.add(tf.mul(normed, this.p(`${name}.weight`)), this.p(`${name}.bias`));
  }

  private conv(x: tf.Tensor4D, name: string, bias: boolean): tf.Tensor4D {
    const y = tf.conv2d(x, this.p(`${name}.weight`) as tf.Tensor4D, 1, 'same');
    return bias ? tf.add(y, this.p(`${name}.bias`)) : y;
  }

  private resBlock(x: tf.Tensor4D, name: string): tf.Tensor4D {
    let h = this.conv(swish(this.groupNorm(x, `${name}.norm1`)) as tf.Tensor4D, `${name}.conv1`, false);
    h = this.conv(swish(this.groupNorm(h, `${name}.norm2`)) as tf.Tensor4D, `${name}.conv2`, false);
    const skip = this.params.has(`${name}.nin_shortcut.weight`)
      ? this.conv(h, `${name}.nin_shortcut`, false)
      : x;
    return tf.add(skip, h);
  }

  /** x [B, H, W, 3] in [0, 1] → z [B, H/f, W/f, chLatent]. */
  encoderForward(x: tf.Tensor4D): tf.Tensor4D {
    const { chMult, numResBlocks, numResMids } = this.cfg;
    let h = this.conv(x, 'encoder.conv_in', false);
    for (let i = 0; i < chMult.length; i++) {
      for (let j = 0; j < numResBlocks; j++) h = this.resBlock(h, `encoder.down.${i}.block.${j}`);
      if (i < chMult.length - 1) h = tf.avgPool(h, 2, 2, 'valid');
    }
    for (let j = 0; j < numResMids; j++) h = this.resBlock(h, `encoder.mid.${j}`);
    return this.conv(swish(this.groupNorm(h, 'encoder.norm_out')) as tf.Tensor4D, 'encoder.conv_out', true);
  }

  /** zq [B, h, w, chLatent] → images [B, h·f, w·f, 3] (unclamped). */
  decoderForward(zq: tf.Tensor4D): tf.Tensor4D {
    const { chMult, numResBlocks, numResMids } = this.cfg;
    let h = this.conv(zq, 'decoder.conv_in', true);
    for (let j = 0; j < numResMids; j++) h = this.resBlock(h, `decoder.mid.${j}`);
    for (let i = 0; i < chMult.length; i++) {
      for (let j = 0; j < numResBlocks; j++) h = this.resBlock(h, `decoder.up.${i}.block.${j}`);
      if (i < chMult.length - 1) {
        const [, hh, ww] = h.shape;
        h = this.conv(
          tf.image.resizeNearestNeighbor(h, [hh * 2, ww * 2]),
          `decoder.up.${i}.upsample.conv`,
          true,
        );
      }
    }
    return this.conv(swish(this.groupNorm(h, 'decoder.norm_out')) as tf.Tensor4D, 'decoder.conv_out', true);
  }

  /** Squared L2 distances of rows z [M, C] to every code [K, C] → [M, K]. */
  private distances(z: tf.Tensor2D, e: tf.Tensor2D): tf.Tensor2D {
    return tf.add(
      tf.sub(tf.sum(tf.square(z), 1, true), tf.mul(tf.matMul(z, e, false, true), 2)),
      tf.sum(tf.square(e), 1),
    );
  }

  /** Nearest code by squared L2 distance: z [M, C] → ids [M]. */
  quantise(z: tf.Tensor2D): tf.Tensor1D {
    const e = this.p('quantizer.embedding.weight') as tf.Tensor2D;
    return tf.argMin(this.distances(z, e), 1);
  }

  /**
   * Training loss on x [B, H, W, 3] in [0, 1]: MSE(x̂, x) + ‖sg(z) − e‖² + β‖z − sg(e)‖² (means), with the
   * decoder fed z + sg(e − z) (straight-through). Returns the total and its parts.
   */
  losses(x: tf.Tensor4D): { total: tf.Scalar; rec: tf.Scalar; codebook: tf.Scalar; commit: tf.Scalar } {
    const z = this.encoderForward(x);
    const [b, h, w, c] = z.shape;
    const flat = tf.reshape(z, [b * h * w, c]) as tf.Tensor2D;
    // the nearest codes as one-hot rows times the codebook: the same values as a gather, differentiable in the
    // codebook, and computed on the device (a gather by ids would need them read back off the gradient tape)
    const e = this.p('quantizer.embedding.weight') as tf.Tensor2D;
    const zq = tf.matMul(tf.oneHot(tf.argMin(this.distances(flat, e), 1), this.cfg.codes), e);
    const codebook = tf.mean(tf.squaredDifference(stopGradient(flat), zq));
    const commit = tf.mean(tf.squaredDifference(flat, stopGradient(zq)));
    const st = tf.add(flat, stopGradient(tf.sub(zq, flat)));
    const rec = tf.mean(
      tf.squaredDifference(this.decoderForward(tf.reshape(st, [b, h, w, c]) as tf.Tensor4D), x),
    );
    const total = tf.add(tf.add(rec, codebook), tf.mul(commit, this.cfg.beta));
    return { total, rec, codebook, commit } as {
      total: tf.Scalar;
      rec: tf.Scalar;
      codebook: tf.Scalar;
      commit: tf.Scalar;
    };
  }

  encode(images: ImageBatch): Int32Array {
    return tidyValues<'int32'>(() => {
      const z = this.encoderForward(imagesToTensor(images));
      const [b, h, w, c] = z.shape;
      return this.quantise(tf.reshape(z, [b * h * w, c]));
    });
  }

  decode(ids: Int32Array, count: number, height: number, width: number): Float32Array {
    const [gh, gw] = this.grid(height, width);
    return tidyValues(() => {
      const e = this.p('quantizer.embedding.weight');
      const zq = tf.reshape(tf.gather(e, tf.tensor1d(ids, 'int32')), [
        count,
        gh,
        gw,
        this.cfg.chLatent,
      ]) as tf.Tensor4D;
      return tf.clipByValue(this.decoderForward(zq), 0, 1);
    });
  }

  dispose(): void {
    disposeParams(this.params);
  }
}

export interface PatchTokenizerConfig {
  patchSize: number;
  codes: number;
  /** Lloyd iterations after k-means++ seeding. */
  iterations: number;
}

/** Non-overlapping p×p patches of uint8 images as vectors in [0, 1], [count·rows·cols, p·p·3], grid row-major. */
export function extractPatches(images: ImageBatch, p: number): Float32Array {
  const { count, height, width } = images;
  const rows = height / p;
  const cols = width / p;
  const dim = p * p * 3;
  const out = new Float32Array(count * rows * cols * dim);
  let o = 0;
  for (let n = 0; n < count; n++) {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        for (let y = 0; y < p; y++) {
          const src = ((n * height + r * p + y) * width + c * p) * 3;
          for (let i = 0; i < p * 3; i++) out[o++] = (images.data[src + i] as number) / 255;
        }
      }
    }
  }
  return out;
}

export class PatchTokenizer implements ImageTokenizer {
  readonly codes: number;
  readonly dim: number;

  /** `codebook` [codes, p·p·3], pixel values in [0, 1], each row a patch in (y, x, channel) order. */
  constructor(
    readonly patchSize: number,
    readonly codebook: Float32Array,
  ) {
    this.dim = patchSize * patchSize * 3;
    this.codes = codebook.length / this.dim;
    if (!Number.isInteger(this.codes))
      throw new RangeError(`codebook of ${codebook.length} values is not [codes, ${this.dim}]`);
  }

  grid(height: number, width: number): [number, number] {
    return [height / this.patchSize, width / this.patchSize];
  }

  encode(images: ImageBatch): Int32Array {
    const patches = extractPatches(images, this.patchSize);
    return nearestCodes(patches, this.codebook, this.dim).ids;
  }

  decode(ids: Int32Array, count: number, height: number, width: number): Float32Array {
    const p = this.patchSize;
    const [rows, cols] = this.grid(height, width);
    const out = new Float32Array(count * height * width * 3);
    for (let n = 0; n < count; n++) {
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const code = ids[(n * rows + r) * cols + c] as number;
          for (let y = 0; y < p; y++) {
            const dst = ((n * height + r * p + y) * width + c * p) * 3;
            out.set(
              this.codebook.subarray(code * this.dim + y * p * 3, code * this.dim + (y + 1) * p * 3),
              dst,
            );
          }
        }
      }
    }
    return out;
  }

  dispose(): void {}
}

/** Nearest code of every row (squared L2) and the mean squared error per value. */
export function nearestCodes(
  x: Float32Array,
  codebook: Float32Array,
  dim: number,
): { ids: Int32Array; mse: number } {
  const n = x.length / dim;
  const k = codebook.length / dim;
  const ids = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    let arg = 0;
    for (let c = 0; c < k; c++) {
      let d = 0;
      for (let j = 0; j < dim; j++) {
        const diff = (x[i * dim + j] as number) - (codebook[c * dim + j] as number);
        d += diff * diff;
      }
      if (d < best) {
        best = d;
        arg = c;
      }
    }
    ids[i] = arg;
    total += best;
  }
  return { ids, mse: total / x.length };
}

/**
 * k-means (k-means++ seeding, then Lloyd iterations) of the training patches, all draws from `rng`. A code
 * left empty by an iteration is re-seeded with a random patch. Returns the tokenizer and the mean squared
 * quantisation error after seeding and after each iteration.
 */
export function fitPatchTokenizer(
  images: ImageBatch,
  cfg: PatchTokenizerConfig,
  rng: Rng,
  onIteration?: (iteration: number, mse: number) => void,
): { tokenizer: PatchTokenizer; history: number[] } {
  const p = cfg.patchSize;
  const dim = p * p * 3;
  const x = extractPatches(images, p);
  const n = x.length / dim;
  if (n < cfg.codes) throw new RangeError(`${n} patches cannot seed ${cfg.codes} codes`);
  const codebook = new Float32Array(cfg.codes * dim);
  // k-means++: first centre uniform, then proportional to the squared distance to the nearest centre
  const dist = new Float64Array(n).fill(Infinity);
  let centre = rng.integer(0, n);
  for (let c = 0; c < cfg.codes; c++) {
    codebook.set(x.subarray(centre * dim, (centre + 1) * dim), c * dim);
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let j = 0; j < dim; j++) {
        const diff = (x[i * dim + j] as number) - (codebook[c * dim + j] as number);
        d += diff * diff;
      }
      if (d < (dist[i] as number)) dist[i] = d;
    }
    if (c + 1 < cfg.codes) centre = dist.some((d) => d > 0) ? rng.categorical(dist) : rng.integer(0, n);
  }
  const history: number[] = [];
  let { ids, mse } = nearestCodes(x, codebook, dim);
  history.push(mse);
  onIteration?.(0, mse);
  for (let it = 1; it <= cfg.iterations; it++) {
    const sums = new Float64Array(cfg.codes * dim);
    const counts = new Int32Array(cfg.codes);
    for (let i = 0; i < n; i++) {
      const c = ids[i] as number;
      counts[c]! += 1;
      for (let j = 0; j < dim; j++) sums[c * dim + j]! += x[i * dim + j] as number;
    }
    for (let c = 0; c < cfg.codes; c++) {
      if (counts[c] === 0) {
        const r = rng.integer(0, n);
        codebook.set(x.subarray(r * dim, (r + 1) * dim), c * dim);
      } else {
        for (let j = 0; j < dim; j++)
          codebook[c * dim + j] = (sums[c * dim + j] as number) / (counts[c] as number);
      }
    }
    ({ ids, mse } = nearestCodes(x, codebook, dim));
    history.push(mse);
    onIteration?.(it, mse);
  }
  return { tokenizer: new PatchTokenizer(p, codebook), history };
}
