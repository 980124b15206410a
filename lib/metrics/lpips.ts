/**
 * LPIPS as `lpips.LPIPS(net='alex', version='0.1')` computes it (spec §5.2's psm), from imported weights
 * (torchvision-alexnet and lpips-alex-v0.1 kinds): images in [−1, 1] go through its ScalingLayer
 * ((x − shift)/scale), AlexNet's five ReLU taps are each divided by their per-pixel channel L2 norm (+1e-10),
 * and for each tap the squared difference is weighted by the linear head (a 1x1 conv over channels) and
 * averaged over space; the distance is the sum over taps.
 *
 * uint8 images map to [−1, 1] as 2·u/255 − 1 (MinD-Vis's [0, 1] images, then lpips' normalize=True).
 */
import * as tf from '@tensorflow/tfjs';
import { BadInputError } from '../errors.js';
import { ALEXNET_CHANNELS, AlexNetFeatures } from '../models/alexnet.js';
import type { ImageBatch } from '../models/types.js';
import type { NdArray } from '../tensors/ndarray.js';

/** lpips' ScalingLayer constants (ImageNet mean/std re-expressed for [−1, 1] inputs). */
const SHIFT = [-0.03, -0.088, -0.188];
const SCALE = [0.458, 0.448, 0.45];
const NORM_EPS = 1e-10;
/** Images per AlexNet forward, and target images per distance broadcast. */
const CHUNK = 32;

export class Lpips {
  private readonly net: AlexNetFeatures;
  /** Head weights per tap, [c_k]. */
  private readonly heads: tf.Tensor1D[] = [];

  constructor(alexnet: Map<string, NdArray>, heads: Map<string, NdArray>, source: string) {
    this.net = new AlexNetFeatures(alexnet, `${source} (AlexNet)`);
    try {
      ALEXNET_CHANNELS.forEach((c, k) => {
        const name = `lin${k}.model.1.weight`;
        const t = heads.get(name);
        if (!t || !(t.data instanceof Float32Array) || t.shape.join() !== [1, 1, c, 1].join())
          throw new BadInputError(
            `${source} (LPIPS heads): tensor '${name}' is ${t ? `${t.dtype} [${t.shape.join(', ')}]` : 'missing'}, expected float32 [1, 1, ${c}, 1]`,
          );
        this.heads.push(tf.tensor1d(t.data));
      });
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** uint8 [B, H, W, 3] → the five unit-normalised taps of images start..start+count. */
  private taps(images: ImageBatch, start: number, count: number): tf.Tensor4D[] {
    const px = images.height * images.width * 3;
    const u8 = images.data.subarray(start * px, (start + count) * px);
    const x = tf.tidy(() => {
      const unit = tf.sub(
        tf.mul(tf.tensor4d(Float32Array.from(u8), [count, images.height, images.width, 3]), 2 / 255),
        1,
      );
      return tf.div(tf.sub(unit, tf.tensor1d(SHIFT)), tf.tensor1d(SCALE)) as tf.Tensor4D;
    });
    const raw = this.net.taps(x);
    x.dispose();
    const out = raw.map((t) =>
      tf.tidy(() => tf.div(t, tf.add(tf.sqrt(tf.sum(tf.square(t), 3, true)), NORM_EPS)) as tf.Tensor4D),
    );
    tf.dispose(raw);
    return out;
  }

  private allTaps(images: ImageBatch): tf.Tensor4D[] {
    const parts: tf.Tensor4D[][] = [];
    for (let s = 0; s < images.count; s += CHUNK)
      parts.push(this.taps(images, s, Math.min(CHUNK, images.count - s)));
    const joined = ALEXNET_CHANNELS.map((_, k) => tf.concat(parts.map((p) => p[k]!)) as tf.Tensor4D);
    for (const p of parts) tf.dispose(p);
    return joined;
  }

  /**
   * m[i·nb + j] = LPIPS(a_i, b_j) for uint8 images of one size; `paired` computes only the diagonal
   * (returned as [n]). float64 out, float32 inside.
   */
  private async compare(a: ImageBatch, b: ImageBatch, paired: boolean): Promise<Float64Array> {
    if (a.height !== b.height || a.width !== b.width)
      throw new BadInputError(
        `LPIPS compares images of one size, got ${a.height}x${a.width} and ${b.height}x${b.width}`,
      );
    if (paired && a.count !== b.count)
      throw new BadInputError(`LPIPS pairs need equal counts, got ${a.count} and ${b.count}`);
    const fa = this.allTaps(a);
    const fb = this.allTaps(b);
    try {
      const out = new Float64Array(paired ? a.count : a.count * b.count);
      // the layer sum of spatial means of Σ_c w_c·(fa − fb)² for rows of a against a block of b
      const score = (ra: tf.Tensor4D[], rb: tf.Tensor4D[]): tf.Tensor1D =>
        tf.tidy(
          () =>
            tf.addN(
              ra.map((x, k) =>
                tf.mean(tf.sum(tf.mul(tf.squaredDifference(x, rb[k]!), this.heads[k]!), 3), [1, 2]),
              ),
            ) as tf.Tensor1D,
        );
      const slice = (f: tf.Tensor4D[], s: number, n: number): tf.Tensor4D[] =>
        f.map((t) => tf.slice(t, [s, 0, 0, 0], [n, -1, -1, -1]));
      if (paired) {
        for (let s = 0; s < a.count; s += CHUNK) {
          const n = Math.min(CHUNK, a.count - s);
          const [ra, rb] = [slice(fa, s, n), slice(fb, s, n)];
          const d = score(ra, rb);
          out.set(await d.data(), s);
          tf.dispose([...ra, ...rb, d]);
        }
        return out;
      }
      for (let i = 0; i < a.count; i++) {
        const ra = slice(fa, i, 1);
        for (let s = 0; s < b.count; s += CHUNK) {
          const n = Math.min(CHUNK, b.count - s);
          const rb = slice(fb, s, n);
          const d = score(ra, rb);
          out.set(await d.data(), i * b.count + s);
          tf.dispose([...rb, d]);
        }
        tf.dispose(ra);
      }
      return out;
    } finally {
      tf.dispose([...fa, ...fb]);
    }
  }

  /** LPIPS(a_i, b_i) for each pair. */
  distances(a: ImageBatch, b: ImageBatch): Promise<Float64Array> {
    return this.compare(a, b, true);
  }

  /** The full matrix m[i·b.count + j] = LPIPS(a_i, b_j) (2-way identification: twoWayFromMatrix). */
  matrix(a: ImageBatch, b: ImageBatch): Promise<Float64Array> {
    return this.compare(a, b, false);
  }

  dispose(): void {
    this.net.dispose();
    tf.dispose(this.heads);
    this.heads.length = 0;
  }
}
