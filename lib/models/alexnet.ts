/**
 * Inference-only torchvision AlexNet `features`, returning the five ReLU outputs LPIPS compares (lpips'
 * pretrained_networks.alexnet slices: after features.1, .4, .7, .9, .11). The classifier is never run.
 *
 *   features.0  conv 11x11 /4 pad 2, 3 → c0, ReLU      tap 0
 *   maxpool 3 /2;  features.3  conv 5x5 pad 2, c0 → c1, ReLU   tap 1
 *   maxpool 3 /2;  features.6  conv 3x3 pad 1, c1 → c2, ReLU   tap 2
 *   features.8   conv 3x3 pad 1, c2 → c3, ReLU          tap 3
 *   features.10  conv 3x3 pad 1, c3 → c4, ReLU          tap 4
 *
 * Parameters keep torchvision's names, conv kernels in the project layout [kh, kw, in, out].
 */
import * as tf from '@tensorflow/tfjs';
import { BadInputError } from '../errors.js';
import type { NdArray } from '../tensors/ndarray.js';

/** torchvision's feature convs: index in `features`, kernel, stride, padding; max-pool before 3 and 6. */
export const ALEXNET_CONVS = [
  { index: 0, kernel: 11, stride: 4, pad: 2, poolBefore: false },
  { index: 3, kernel: 5, stride: 1, pad: 2, poolBefore: true },
  { index: 6, kernel: 3, stride: 1, pad: 1, poolBefore: true },
  { index: 8, kernel: 3, stride: 1, pad: 1, poolBefore: false },
  { index: 10, kernel: 3, stride: 1, pad: 1, poolBefore: false },
] as const;

/** The taps' channel widths c0..c4 (fixed by torchvision's code, as lpips' `chns`). */
export const ALEXNET_CHANNELS = [64, 192, 384, 256, 256] as const;

/** Every feature parameter with its shape in project layout. */
export function alexnetParamShapes(): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  ALEXNET_CONVS.forEach((c, i) => {
    const cin = i === 0 ? 3 : ALEXNET_CHANNELS[i - 1]!;
    shapes.set(`features.${c.index}.weight`, [c.kernel, c.kernel, cin, ALEXNET_CHANNELS[i]!]);
    shapes.set(`features.${c.index}.bias`, [ALEXNET_CHANNELS[i]!]);
  });
  return shapes;
}

export class AlexNetFeatures {
  private readonly w = new Map<string, tf.Tensor>();

  constructor(tensors: Map<string, NdArray>, source: string) {
    try {
      for (const [name, shape] of alexnetParamShapes()) {
        const t = tensors.get(name);
        if (!t) throw new BadInputError(`${source}: has no tensor '${name}'`);
        if (!(t.data instanceof Float32Array) || t.shape.join() !== shape.join())
          throw new BadInputError(
            `${source}: tensor '${name}' is ${t.dtype} [${t.shape.join(', ')}], expected float32 [${shape.join(', ')}]`,
          );
        this.w.set(name, tf.tensor(t.data, shape));
      }
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** Network input [B, H, W, 3] (already normalised) → the five ReLU taps [B, h_l, w_l, c_l]. */
  taps(x: tf.Tensor4D): tf.Tensor4D[] {
    const out: tf.Tensor4D[] = [];
    let h = x;
    for (const c of ALEXNET_CONVS) {
      const prev = h;
      h = tf.tidy(() => {
        // torch MaxPool2d(3, 2) floors the output size, as 'valid' does
        const input = c.poolBefore ? tf.maxPool(prev, 3, 2, 'valid') : prev;
        const padded = tf.pad(input, [
          [0, 0],
          [c.pad, c.pad],
          [c.pad, c.pad],
          [0, 0],
        ]);
        return tf.fused.conv2d({
          x: padded,
          filter: this.w.get(`features.${c.index}.weight`) as tf.Tensor4D,
          strides: c.stride,
          pad: 'valid',
          bias: this.w.get(`features.${c.index}.bias`),
          activation: 'relu',
        });
      });
      out.push(h);
    }
    return out;
  }

  dispose(): void {
    tf.dispose([...this.w.values()]);
    this.w.clear();
  }
}
