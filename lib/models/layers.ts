/**
 * What the models in lib/models share: parameter creation (PyTorch's initialisers, drawn from a seeded Rng),
 * a few differentiable layers written with tfjs ops (tfjs autodiff gives their gradients), fixed sin-cos
 * positions, dropout masks from the Rng, and moving named parameters in and out of safetensors arrays. The
 * training models' fused ops, with their hand-written backwards, are in fused/.
 *
 * Storage layout (all models): parameters keep PyTorch's names; Linear weights are stored [in, out] (as in
 * transformer.ts), convolution weights in tfjs layout [k, in, out] / [kh, kw, in, out], everything else
 * (embeddings, tokens, norms, biases) in PyTorch's own shape. Importing a PyTorch state_dict is therefore a
 * transpose of 2-D Linear weights and a fixed permutation of conv weights ([out, in, k...] → [k..., in, out]).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import type { NdArray } from '../tensors/ndarray.js';
import type { Params } from './types.js';
import type { GeluForm } from './maskgit-numerics.js';

export type { Params } from './types.js';

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Adds variables to a parameter map, in creation order (the order checkpoints and optimizers use). */
export class ParamBuilder {
  constructor(
    private readonly rng: Rng,
    readonly params: Params = new Map(),
  ) {}

  private add(name: string, shape: number[], values: Float32Array): void {
    if (this.params.has(name)) throw new Error(`duplicate parameter ${name}`);
    const t = tf.tensor(values, shape);
    this.params.set(name, tf.variable(t, true));
    t.dispose();
  }

  /**
   * PyTorch xavier_uniform_ for a weight stored [.., in, out]: fan_in = in·receptive, fan_out = out·receptive,
   * where receptive is the product of the leading (kernel) dimensions.
   */
  xavier(name: string, shape: number[]): void {
    const receptive = sizeOf(shape.slice(0, -2));
    const fanIn = (shape[shape.length - 2] as number) * receptive;
    const fanOut = (shape[shape.length - 1] as number) * receptive;
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    this.add(name, shape, this.rng.fillUniform(new Float32Array(sizeOf(shape)), -limit, limit));
  }

  normal(name: string, shape: number[], std: number): void {
    this.add(name, shape, this.rng.fillNormal(new Float32Array(sizeOf(shape)), 0, std));
  }

  /** torch.nn.init.trunc_normal_(w, 0, std) truncates at the absolute bounds [-2, 2] (redrawn when outside). */
  truncNormal(name: string, shape: number[], std: number): void {
    const values = this.rng.fillNormal(new Float32Array(sizeOf(shape)), 0, std);
    for (let i = 0; i < values.length; i++) {
      while (Math.abs(values[i] as number) > 2) values[i] = this.rng.normal(0, std);
    }
    this.add(name, shape, values);
  }

  uniform(name: string, shape: number[], lo: number, hi: number): void {
    this.add(name, shape, this.rng.fillUniform(new Float32Array(sizeOf(shape)), lo, hi));
  }

  zeros(name: string, shape: number[]): void {
    this.add(name, shape, new Float32Array(sizeOf(shape)));
  }

  ones(name: string, shape: number[]): void {
    this.add(name, shape, new Float32Array(sizeOf(shape)).fill(1));
  }

  /** Merges an already built map (e.g. initEncoder's), keeping its order. */
  merge(other: Params): void {
    for (const [name, v] of other) {
      if (this.params.has(name)) throw new Error(`duplicate parameter ${name}`);
      this.params.set(name, v);
    }
  }
}

export function param(params: Params, name: string): tf.Variable {
  const v = params.get(name);
  if (!v) throw new Error(`missing parameter ${name}`);
  return v;
}

/** A Linear or layer-norm layer's two parameters, as the fused ops take them. */
export interface WeightBias {
  weight: tf.Tensor;
  bias: tf.Tensor;
}

/** `{name}.weight` and `{name}.bias`. */
export function weightBias(params: Params, name: string): WeightBias {
  return { weight: param(params, `${name}.weight`), bias: param(params, `${name}.bias`) };
}

export function countParams(params: Params): number {
  let n = 0;
  for (const v of params.values()) n += v.size;
  return n;
}

export function disposeParams(params: Params): void {
  for (const v of params.values()) v.dispose();
  params.clear();
}

/** Copies of the parameters as float32 arrays, for safetensors. */
export function paramsToArrays(params: Params): Map<string, NdArray> {
  const out = new Map<string, NdArray>();
  for (const [name, v] of params) {
    out.set(name, { dtype: 'float32', shape: [...v.shape], data: Float32Array.from(v.dataSync()) });
  }
  return out;
}

/**
 * Assigns every parameter from `tensors`, which must hold exactly the same names and shapes (float32):
 * anything else is a checkpoint of another model config and is refused naming the first mismatched tensor.
 */
export function loadParamsStrict(params: Params, tensors: Map<string, NdArray>, source: string): void {
  for (const [name, v] of params) {
    const t = tensors.get(name);
    if (!t)
      throw new BadInputError(`${source}: has no tensor '${name}' (a checkpoint of another model config?)`);
    if (t.dtype !== 'float32')
      throw new BadInputError(`${source}: tensor '${name}' is ${t.dtype}, expected float32`);
    if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      throw new BadInputError(
        `${source}: tensor '${name}' has shape [${t.shape.join(', ')}] but the model's is [${v.shape.join(', ')}] ` +
          '(a checkpoint of another model config?)',
      );
    }
  }
  for (const name of tensors.keys()) {
    if (!params.has(name))
      throw new BadInputError(
        `${source}: has tensor '${name}' that the model does not (a checkpoint of another model config?)`,
      );
  }
  for (const [name, v] of params) {
    const t = tensors.get(name) as NdArray;
    tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, t.shape)));
  }
}

/** What a by-name, by-shape transfer did not load (the non-strict loader of spec §2.1). */
export interface TransferReport {
  loaded: string[];
  /** Target parameters left at their own initialisation, with the reason. */
  notLoaded: { name: string; reason: string }[];
  /** Source tensors that no target parameter took. */
  unused: string[];
}

/** Copies each source tensor whose name and shape match a target parameter; reports everything else. */
export function transferByNameAndShape(target: Params, source: Map<string, NdArray>): TransferReport {
  const report: TransferReport = { loaded: [], notLoaded: [], unused: [] };
  for (const [name, v] of target) {
    const t = source.get(name);
    if (!t) {
      report.notLoaded.push({ name, reason: 'absent from the source' });
    } else if (
      t.dtype !== 'float32' ||
      t.shape.length !== v.shape.length ||
      t.shape.some((d, i) => d !== v.shape[i])
    ) {
      report.notLoaded.push({
        name,
        reason: `source is ${t.dtype} [${t.shape.join(', ')}], target is float32 [${v.shape.join(', ')}]`,
      });
    } else {
      tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, t.shape)));
      report.loaded.push(name);
    }
  }
  for (const name of source.keys()) if (!target.has(name)) report.unused.push(name);
  return report;
}

/**
 * 1-D sin-cos positions (MAE's get_1d_sincos_pos_embed, cls_token=True): row 0 (the CLS slot) is zero, row
 * p+1 is [sin(p·ω_k)..., cos(p·ω_k)...] with ω_k = 10000^(−k/(D/2)), k = 0..D/2−1. Returns [length+1, dim].
 */
export function sincosPositions(dim: number, length: number): Float32Array {
  if (dim % 2 !== 0) throw new RangeError(`sin-cos positions need an even width, got ${dim}`);
  const half = dim / 2;
  const out = new Float32Array((length + 1) * dim);
  for (let p = 0; p < length; p++) {
    const row = (p + 1) * dim;
    for (let k = 0; k < half; k++) {
      const angle = p / 10000 ** (k / half);
      out[row + k] = Math.sin(angle);
      out[row + half + k] = Math.cos(angle);
    }
  }
  return out;
}

/** y = x @ W + b for x [N, in], W [in, out]. */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor2D {
  const y = tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D) as tf.Tensor2D;
  return b ? (tf.add(y, b) as tf.Tensor2D) : y;
}

/** Layer norm over the last axis. */
export function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), g), b);
}

/** √(2/π), and its product with 0.044715: the tanh form's inner term is x·(TANH_K + TANH_K3·x²). */
const TANH_K = Math.sqrt(2 / Math.PI);
const TANH_K3 = TANH_K * 0.044715;

/** GELU: exact, ½x(1 + erf(x/√2)) (nn.GELU's default), or jax.nn.gelu's ½x(1 + tanh(√(2/π)(x + 0.044715x³))). */
export function gelu(x: tf.Tensor, form: GeluForm = 'erf'): tf.Tensor {
  const inner =
    form === 'erf'
      ? tf.erf(tf.mul(x, Math.SQRT1_2))
      : tf.tanh(tf.mul(x, tf.add(tf.mul(tf.square(x), TANH_K3), TANH_K)));
  return tf.mul(tf.mul(x, 0.5), tf.add(inner, 1));
}

/** x·sigmoid(x) ("swish", VQGAN's nonlinearity). */
export function swish(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * Inverted-dropout mask: 1/(1 − rate) where kept, 0 where dropped, every element dropped independently with
 * probability `rate`. Drawn as geometric gaps between dropped elements, one uniform per dropped element instead
 * of one per element (at paper size MaskGIT's attention masks alone are 200 M elements a step).
 */
export function dropoutMask<R extends tf.Rank>(shape: number[], rate: number, rng: Rng): tf.Tensor<R> {
  const n = shape.reduce((a, b) => a * b, 1);
  const mask = new Float32Array(n).fill(1 / (1 - rate));
  const logKeep = Math.log1p(-rate);
  const gap = (): number => Math.floor(Math.log1p(-rng.uniform()) / logKeep); // kept elements before a drop
  for (let i = gap(); i < n; i += 1 + gap()) mask[i] = 0;
  return tf.tensor(mask, shape as tf.ShapeMap[R]) as tf.Tensor<R>;
}

/** `count` distinct positions of [0, n) drawn uniformly (a partial Fisher-Yates shuffle). */
export function sampleWithoutReplacement(
  rng: Rng,
  n: number,
  count: number,
  scratch = new Int32Array(n),
): Int32Array {
  for (let i = 0; i < n; i++) scratch[i] = i;
  for (let i = 0; i < count; i++) {
    const j = rng.integer(i, n);
    const t = scratch[i] as number;
    scratch[i] = scratch[j] as number;
    scratch[j] = t;
  }
  return scratch.slice(0, count);
}
