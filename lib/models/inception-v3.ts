/**
 * Inference-only InceptionV3 as torch-fidelity 0.4.0's FeatureExtractorInceptionV3 (the TF 2015-12-05 graph
 * ported to PyTorch; torchmetrics' FrechetInceptionDistance wraps it), up to its '64' features (mean of
 * MaxPool_1's output) and its '2048' pool features (mean of Mixed_7c's output).
 *
 * Input: uint8 images of any size, resized to 299x299 in float32 (InceptionResize: the antialiased bilinear
 * torchmetrics uses by default, or torch-fidelity's TF1-compatible bilinear), then
 * (x − 128) / 128. Every conv is BasicConv2d: conv (no bias) → BatchNorm (eps 1e-3, running statistics) →
 * ReLU; the BatchNorm is folded into the conv when the model is built.
 *
 * Parameters keep torch-fidelity's names (`Mixed_5b.branch1x1.conv.weight`, `….bn.running_var`), conv kernels
 * in the project layout [kh, kw, in, out].
 */
import * as tf from '@tensorflow/tfjs';
import { BadInputError } from '../errors.js';
import { ndarray, type NdArray } from '../tensors/ndarray.js';
import type { ImageBatch } from './types.js';

export const INCEPTION_SIZE = 299;
export const INCEPTION_BN_EPS = 1e-3;
/** The TF graph's classifier width (1008 = 1000 ImageNet classes + 8 unused). */
export const INCEPTION_CLASSES = 1008;

export interface InceptionConv {
  name: string;
  cin: number;
  cout: number;
  kh: number;
  kw: number;
  stride: 1 | 2;
  /** torch padding (kh−1)/2, (kw−1)/2 ('same' at stride 1); otherwise none. */
  same: boolean;
}

function conv(
  name: string,
  cin: number,
  cout: number,
  k: number | [number, number],
  stride: 1 | 2 = 1,
  same = true,
): InceptionConv {
  const [kh, kw] = typeof k === 'number' ? [k, k] : k;
  return { name, cin, cout, kh, kw, stride, same };
}

function blockA(p: string, cin: number, pool: number): InceptionConv[] {
  return [
    conv(`${p}.branch1x1`, cin, 64, 1),
    conv(`${p}.branch5x5_1`, cin, 48, 1),
    conv(`${p}.branch5x5_2`, 48, 64, 5),
    conv(`${p}.branch3x3dbl_1`, cin, 64, 1),
    conv(`${p}.branch3x3dbl_2`, 64, 96, 3),
    conv(`${p}.branch3x3dbl_3`, 96, 96, 3),
    conv(`${p}.branch_pool`, cin, pool, 1),
  ];
}

function blockC(p: string, c7: number): InceptionConv[] {
  return [
    conv(`${p}.branch1x1`, 768, 192, 1),
    conv(`${p}.branch7x7_1`, 768, c7, 1),
    conv(`${p}.branch7x7_2`, c7, c7, [1, 7]),
    conv(`${p}.branch7x7_3`, c7, 192, [7, 1]),
    conv(`${p}.branch7x7dbl_1`, 768, c7, 1),
    conv(`${p}.branch7x7dbl_2`, c7, c7, [7, 1]),
    conv(`${p}.branch7x7dbl_3`, c7, c7, [1, 7]),
    conv(`${p}.branch7x7dbl_4`, c7, c7, [7, 1]),
    conv(`${p}.branch7x7dbl_5`, c7, 192, [1, 7]),
    conv(`${p}.branch_pool`, 768, 192, 1),
  ];
}

function blockE(p: string, cin: number): InceptionConv[] {
  return [
    conv(`${p}.branch1x1`, cin, 320, 1),
    conv(`${p}.branch3x3_1`, cin, 384, 1),
    conv(`${p}.branch3x3_2a`, 384, 384, [1, 3]),
    conv(`${p}.branch3x3_2b`, 384, 384, [3, 1]),
    conv(`${p}.branch3x3dbl_1`, cin, 448, 1),
    conv(`${p}.branch3x3dbl_2`, 448, 384, 3),
    conv(`${p}.branch3x3dbl_3a`, 384, 384, [1, 3]),
    conv(`${p}.branch3x3dbl_3b`, 384, 384, [3, 1]),
    conv(`${p}.branch_pool`, cin, 192, 1),
  ];
}

/** Every BasicConv2d of the extractor in state-dict order (sizes fixed by torch-fidelity's code). */
export const INCEPTION_CONVS: readonly InceptionConv[] = [
  conv('Conv2d_1a_3x3', 3, 32, 3, 2, false),
  conv('Conv2d_2a_3x3', 32, 32, 3, 1, false),
  conv('Conv2d_2b_3x3', 32, 64, 3),
  conv('Conv2d_3b_1x1', 64, 80, 1),
  conv('Conv2d_4a_3x3', 80, 192, 3, 1, false),
  ...blockA('Mixed_5b', 192, 32),
  ...blockA('Mixed_5c', 256, 64),
  ...blockA('Mixed_5d', 288, 64),
  conv('Mixed_6a.branch3x3', 288, 384, 3, 2, false),
  conv('Mixed_6a.branch3x3dbl_1', 288, 64, 1),
  conv('Mixed_6a.branch3x3dbl_2', 64, 96, 3),
  conv('Mixed_6a.branch3x3dbl_3', 96, 96, 3, 2, false),
  ...blockC('Mixed_6b', 128),
  ...blockC('Mixed_6c', 160),
  ...blockC('Mixed_6d', 160),
  ...blockC('Mixed_6e', 192),
  conv('Mixed_7a.branch3x3_1', 768, 192, 1),
  conv('Mixed_7a.branch3x3_2', 192, 320, 3, 2, false),
  conv('Mixed_7a.branch7x7x3_1', 768, 192, 1),
  conv('Mixed_7a.branch7x7x3_2', 192, 192, [1, 7]),
  conv('Mixed_7a.branch7x7x3_3', 192, 192, [7, 1]),
  conv('Mixed_7a.branch7x7x3_4', 192, 192, 3, 2, false),
  ...blockE('Mixed_7b', 1280),
  ...blockE('Mixed_7c', 2048),
];

export const BN_PARAMS = ['weight', 'bias', 'running_mean', 'running_var'] as const;

/** Every parameter the forward reads, with its shape in project layout. */
export function inceptionParamShapes(): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const c of INCEPTION_CONVS) {
    shapes.set(`${c.name}.conv.weight`, [c.kh, c.kw, c.cin, c.cout]);
    for (const p of BN_PARAMS) shapes.set(`${c.name}.bn.${p}`, [c.cout]);
  }
  return shapes;
}

/**
 * How 'uint8 → 299 px' is done: 'antialias' is torchmetrics' default (F.interpolate bilinear, antialias=True,
 * align_corners=False: a triangle filter stretched by the scale when shrinking); 'tf1' is torch-fidelity's own
 * interpolate_bilinear_2d_like_tensorflow1x (source x = i·in/out in float32, no half-pixel offset), which
 * torchmetrics uses with antialias=False (and always did before it had the option).
 */
export type InceptionResize = 'antialias' | 'tf1';

/** Row-major [out, in] interpolation weights of one axis. */
export function resizeWeights(inSize: number, outSize: number, mode: InceptionResize): Float32Array {
  const w = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    if (mode === 'tf1') {
      const x = Math.fround(i * Math.fround(scale));
      const lo = Math.trunc(x);
      const d = Math.fround(x - lo);
      w[i * inSize + lo] = 1 - d;
      w[i * inSize + Math.min(lo + 1, inSize - 1)]! += d;
      continue;
    }
    // aten's _compute_indices_min_size_weights_aa with the bilinear (triangle) filter
    const support = scale >= 1 ? scale : 1;
    const invScale = scale >= 1 ? 1 / scale : 1;
    const centre = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
    let total = 0;
    const taps: number[] = [];
    for (let j = lo; j < hi; j++) {
      const t = Math.max(0, 1 - Math.abs((j - centre + 0.5) * invScale));
      taps.push(t);
      total += t;
    }
    taps.forEach((t, k) => (w[i * inSize + lo + k] = total > 0 ? t / total : 0));
  }
  return w;
}

/** Images per forward: the stem's [B, 147, 147, 64] activations dominate (~5.5 MB an image). */
const CHUNK = 16;

export class InceptionV3 {
  /** Folded BasicConv2d: kernel·γ/σ [kh, kw, in, out] and bias β − μ·γ/σ [out]. */
  private readonly convs = new Map<string, { spec: InceptionConv; w: tf.Tensor4D; b: tf.Tensor1D }>();

  constructor(tensors: Map<string, NdArray>, source: string) {
    try {
      const shapes = inceptionParamShapes();
      const get = (name: string): Float32Array => {
        const t = tensors.get(name);
        const shape = shapes.get(name)!;
        if (!t) throw new BadInputError(`${source}: has no tensor '${name}'`);
        if (!(t.data instanceof Float32Array) || t.shape.join() !== shape.join())
          throw new BadInputError(
            `${source}: tensor '${name}' is ${t.dtype} [${t.shape.join(', ')}], expected float32 [${shape.join(', ')}]`,
          );
        return t.data;
      };
      for (const spec of INCEPTION_CONVS) {
        const [gamma, beta, mean, variance] = BN_PARAMS.map((p) => get(`${spec.name}.bn.${p}`)) as [
          Float32Array,
          Float32Array,
          Float32Array,
          Float32Array,
        ];
        const kernel = get(`${spec.name}.conv.weight`).slice();
        const bias = new Float32Array(spec.cout);
        for (let o = 0; o < spec.cout; o++) {
          const s = gamma[o]! / Math.sqrt(variance[o]! + INCEPTION_BN_EPS);
          bias[o] = beta[o]! - mean[o]! * s;
          for (let k = o; k < kernel.length; k += spec.cout) kernel[k] = kernel[k]! * s;
        }
        this.convs.set(spec.name, {
          spec,
          w: tf.tensor4d(kernel, [spec.kh, spec.kw, spec.cin, spec.cout]),
          b: tf.tensor1d(bias),
        });
      }
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  private conv(name: string, x: tf.Tensor4D): tf.Tensor4D {
    const c = this.convs.get(name)!;
    return tf.fused.conv2d({
      x,
      filter: c.w,
      strides: c.spec.stride,
      pad: c.spec.same ? 'same' : 'valid',
      bias: c.b,
      activation: 'relu',
    });
  }

  private chain(prefix: string, names: string[], x: tf.Tensor4D): tf.Tensor4D {
    return names.reduce((h, n) => this.conv(prefix ? `${prefix}.${n}` : n, h), x);
  }

  /** uint8 [B, H, W, 3] → network input [B, 299, 299, 3]: resize in float32, then (x − 128)/128. */
  input(images: ImageBatch, start: number, count: number, mode: InceptionResize): tf.Tensor4D {
    const { height: h, width: w } = images;
    const s = INCEPTION_SIZE;
    const pixels = images.data.subarray(start * h * w * 3, (start + count) * h * w * 3);
    return tf.tidy(() => {
      const x = tf.transpose(tf.tensor4d(Float32Array.from(pixels), [count, h, w, 3]), [0, 3, 1, 2]);
      const rx = tf.tensor2d(resizeWeights(w, s, mode), [s, w]);
      const ry = tf.tensor2d(resizeWeights(h, s, mode), [s, h]);
      // along W: [B·3·H, W] @ rxᵀ → [B·3, H, S]; along H: ry @ each [H, S] → [B·3, S, S]
      const alongW = tf.reshape(tf.matMul(tf.reshape(x, [count * 3 * h, w]), rx, false, true), [
        count * 3,
        h,
        s,
      ]);
      const alongH = tf.matMul(tf.broadcastTo(ry, [count * 3, s, h]), alongW);
      const nhwc = tf.transpose(tf.reshape(alongH, [count, 3, s, s]), [0, 2, 3, 1]);
      return tf.div(tf.sub(nhwc, 128), 128) as tf.Tensor4D;
    });
  }

  /** Stem up to MaxPool_1: [B, 299, 299, 3] → [B, 73, 73, 64]. */
  private stem64(x: tf.Tensor4D): tf.Tensor4D {
    const h = this.chain('', ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3'], x);
    return tf.maxPool(h, 3, 2, 'valid');
  }

  /** Average pool 3x3 /1 pad 1 not counting the padding (TF's, torch-fidelity's count_include_pad=False). */
  private avgPool3(x: tf.Tensor4D): tf.Tensor4D {
    const pad: [number, number][] = [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ];
    const sums = tf.avgPool(tf.pad(x, pad), 3, 1, 'valid');
    const counts = tf.avgPool(
      tf.pad(tf.onesLike(tf.slice(x, [0, 0, 0, 0], [1, -1, -1, 1])), pad),
      3,
      1,
      'valid',
    );
    return tf.div(sums, counts);
  }

  private mixedA(p: string, x: tf.Tensor4D): tf.Tensor4D {
    return tf.concat(
      [
        this.conv(`${p}.branch1x1`, x),
        this.chain(p, ['branch5x5_1', 'branch5x5_2'], x),
        this.chain(p, ['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'], x),
        this.conv(`${p}.branch_pool`, this.avgPool3(x)),
      ],
      3,
    );
  }

  private mixedC(p: string, x: tf.Tensor4D): tf.Tensor4D {
    return tf.concat(
      [
        this.conv(`${p}.branch1x1`, x),
        this.chain(p, ['branch7x7_1', 'branch7x7_2', 'branch7x7_3'], x),
        this.chain(
          p,
          [1, 2, 3, 4, 5].map((i) => `branch7x7dbl_${i}`),
          x,
        ),
        this.conv(`${p}.branch_pool`, this.avgPool3(x)),
      ],
      3,
    );
  }

  /** Mixed_7b pools by average, Mixed_7c by max (the TF graph's quirk torch-fidelity keeps). */
  private mixedE(p: string, x: tf.Tensor4D, maxPool: boolean): tf.Tensor4D {
    const b3 = this.conv(`${p}.branch3x3_1`, x);
    const d3 = this.chain(p, ['branch3x3dbl_1', 'branch3x3dbl_2'], x);
    // inputs are ReLU outputs (≥ 0), so 'same' max pooling's padding cannot win
    const pooled = maxPool ? tf.maxPool(x, 3, 1, 'same') : this.avgPool3(x);
    return tf.concat(
      [
        this.conv(`${p}.branch1x1`, x),
        this.conv(`${p}.branch3x3_2a`, b3),
        this.conv(`${p}.branch3x3_2b`, b3),
        this.conv(`${p}.branch3x3dbl_3a`, d3),
        this.conv(`${p}.branch3x3dbl_3b`, d3),
        this.conv(`${p}.branch_pool`, pooled),
      ],
      3,
    );
  }

  /** MaxPool_1's output [B, 73, 73, 64] → the rest of the network → [B, 8, 8, 2048]. */
  private trunk(x: tf.Tensor4D): tf.Tensor4D {
    let h = tf.maxPool(this.chain('', ['Conv2d_3b_1x1', 'Conv2d_4a_3x3'], x), 3, 2, 'valid'); // [B, 35, 35, 192]
    h = this.mixedA('Mixed_5b', h); // 256
    h = this.mixedA('Mixed_5c', h); // 288
    h = this.mixedA('Mixed_5d', h); // 288
    h = tf.concat(
      [
        this.conv('Mixed_6a.branch3x3', h),
        this.chain('Mixed_6a', ['branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'], h),
        tf.maxPool(h, 3, 2, 'valid'),
      ],
      3,
    ); // [B, 17, 17, 768]
    for (const p of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) h = this.mixedC(p, h);
    h = tf.concat(
      [
        this.chain('Mixed_7a', ['branch3x3_1', 'branch3x3_2'], h),
        this.chain(
          'Mixed_7a',
          [1, 2, 3, 4].map((i) => `branch7x7x3_${i}`),
          h,
        ),
        tf.maxPool(h, 3, 2, 'valid'),
      ],
      3,
    ); // [B, 8, 8, 1280]
    h = this.mixedE('Mixed_7b', h, false); // 2048
    return this.mixedE('Mixed_7c', h, true); // [B, 8, 8, 2048]
  }

  /**
   * uint8 images [count, H, W, 3] → [count, 64] ('64': needs only the stem) or [count, 2048] ('2048'),
   * float32, in chunks.
   */
  async features(
    images: ImageBatch,
    layer: 64 | 2048,
    mode: InceptionResize = 'antialias',
  ): Promise<NdArray> {
    const out = new Float32Array(images.count * layer);
    for (let start = 0; start < images.count; start += CHUNK) {
      const count = Math.min(CHUNK, images.count - start);
      const x = this.input(images, start, count, mode);
      const y = tf.tidy(() => {
        const h = this.stem64(x);
        return tf.mean(layer === 64 ? h : this.trunk(h), [1, 2]);
      });
      x.dispose();
      out.set(await y.data(), start * layer);
      y.dispose();
    }
    return ndarray('float32', [images.count, layer], out);
  }

  dispose(): void {
    for (const c of this.convs.values()) tf.dispose([c.w, c.b]);
    this.convs.clear();
  }
}
