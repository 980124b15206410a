/**
 * Inference-only pre-LN Vision Transformer for imported networks, in the two upstream variants the project
 * runs: open_clip's image tower (spec §2.3: ln_pre, no patch bias, class token → ln_post → `@ proj` →
 * L2-normalised features; LayerNorm eps 1e-5) and torchvision's VisionTransformer classifier (patch bias,
 * no ln_pre, class token → encoder.ln → heads.head logits; eps 1e-6). Both blocks are
 *   x = x + out_proj(MHA(ln_1(x)));  x = x + fc2(GELU(fc1(ln_2(x))))   (exact-erf GELU)
 * Images go through the reference's eval preprocessing (lib/images/resize.ts: shorter side to the image
 * size, bicubic, centre crop; /255; per-channel mean/std) and the forward runs in chunks of images.
 *
 * Parameter names are timm's (as lib/models/transformer.ts) so one forward serves both upstream namings;
 * layouts are the project's (Linear [in, out], conv [kh, kw, in, out]); the kinds in lib/weights/kinds map
 * the upstream files onto them.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { BadInputError } from '../errors.js';
import { resizeShorterAndCrop } from '../images/resize.js';
import { ndarray, type NdArray } from '../tensors/ndarray.js';
import type { ImageBatch } from './types.js';
import { gelu, layerNorm } from './layers.js';

const rgb = z.tuple([z.number(), z.number(), z.number()]);
const positive = z.number().int().positive();
const vitConfigSchema = z.object({
  imageSize: positive,
  patch: positive,
  width: positive,
  layers: positive,
  heads: positive,
  /** MLP hidden width. */
  mlp: positive,
  /** Output width: open_clip's proj columns or torchvision's class count. */
  outDim: positive,
  eps: z.number().positive(),
  /** open_clip: LayerNorm after the position embedding (ln_pre). */
  lnPre: z.boolean(),
  patchBias: z.boolean(),
  headBias: z.boolean(),
  /** open_clip's encode_image(normalize=True). */
  l2Normalize: z.boolean(),
  mean: rgb,
  std: rgb,
});
export type VitConfig = z.infer<typeof vitConfigSchema>;

/** Checks an artifact's stored config (JSON) and the divisibility the forward relies on. */
export function parseVitConfig(raw: Record<string, unknown>, source: string): VitConfig {
  const r = vitConfigSchema.safeParse(raw);
  if (!r.success) throw new BadInputError(`${source}: not a ViT config: ${r.error.message}`);
  const c = r.data;
  if (c.imageSize % c.patch !== 0)
    throw new BadInputError(`${source}: image size ${c.imageSize} is not a multiple of patch ${c.patch}`);
  if (c.width % c.heads !== 0)
    throw new BadInputError(`${source}: width ${c.width} does not divide into ${c.heads} heads`);
  return c;
}

/** Tokens per image: the class token and one per patch. */
export function vitTokens(c: Pick<VitConfig, 'imageSize' | 'patch'>): number {
  return (c.imageSize / c.patch) ** 2 + 1;
}

/** Every parameter the forward reads, with its shape in project layout, in upstream order. */
export function vitParamShapes(c: VitConfig): Map<string, number[]> {
  const { width: w, mlp: m, patch: p } = c;
  const s = new Map<string, number[]>([['patch_embed.weight', [p, p, 3, w]]]);
  if (c.patchBias) s.set('patch_embed.bias', [w]);
  s.set('cls_token', [w]);
  s.set('pos_embed', [vitTokens(c), w]);
  if (c.lnPre) s.set('norm_pre.weight', [w]).set('norm_pre.bias', [w]);
  for (let i = 0; i < c.layers; i++) {
    const b = `blocks.${i}.`;
    s.set(`${b}norm1.weight`, [w]).set(`${b}norm1.bias`, [w]);
    s.set(`${b}attn.qkv.weight`, [w, 3 * w]).set(`${b}attn.qkv.bias`, [3 * w]);
    s.set(`${b}attn.proj.weight`, [w, w]).set(`${b}attn.proj.bias`, [w]);
    s.set(`${b}norm2.weight`, [w]).set(`${b}norm2.bias`, [w]);
    s.set(`${b}mlp.fc1.weight`, [w, m]).set(`${b}mlp.fc1.bias`, [m]);
    s.set(`${b}mlp.fc2.weight`, [m, w]).set(`${b}mlp.fc2.bias`, [w]);
  }
  s.set('norm.weight', [w]).set('norm.bias', [w]);
  s.set('head.weight', [w, c.outDim]);
  if (c.headBias) s.set('head.bias', [c.outDim]);
  return s;
}

/**
 * uint8 images → the reference's eval input, float32 NHWC [count, S, S, 3]: resize shorter side to S
 * (PIL bicubic), centre crop S, then torchvision's ToTensor + Normalize in float32: (u/255 − mean)/std.
 */
export function preprocessImages(
  images: ImageBatch,
  size: number,
  mean: readonly number[],
  std: readonly number[],
  start = 0,
  count = images.count - start,
): Float32Array {
  // one table per channel: the three float32 roundings torch makes, looked up per pixel
  const table = new Float32Array(3 * 256);
  for (let ch = 0; ch < 3; ch++) {
    const m = Math.fround(mean[ch] as number);
    const s = Math.fround(std[ch] as number);
    for (let u = 0; u < 256; u++)
      table[ch * 256 + u] = Math.fround(Math.fround(Math.fround(u / 255) - m) / s);
  }
  const pixels = images.height * images.width * 3;
  const out = new Float32Array(count * size * size * 3);
  for (let i = 0; i < count; i++) {
    const from = (start + i) * pixels;
    const img = resizeShorterAndCrop(
      {
        data: images.data.subarray(from, from + pixels),
        height: images.height,
        width: images.width,
        channels: 3,
      },
      size,
    );
    const o = i * size * size * 3;
    for (let j = 0; j < img.data.length; j++)
      out[o + j] = table[(j % 3) * 256 + (img.data[j] as number)] as number;
  }
  return out;
}

/**
 * Bytes of attention scores and MLP activations a chunk may hold at once: also bounds how long one forward
 * holds the event loop (8 images of ViT-H/14 at 224 px, about 10 s on 2 CPU cores).
 */
const CHUNK_BYTES = 1 << 28;

export class VisionTransformer {
  private readonly w = new Map<string, tf.Tensor>();

  constructor(
    readonly cfg: VitConfig,
    tensors: Map<string, NdArray>,
    source: string,
  ) {
    const qkvScale = 1 / Math.sqrt(cfg.width / cfg.heads);
    try {
      for (const [name, shape] of vitParamShapes(cfg)) {
        const t = tensors.get(name);
        if (!t) throw new BadInputError(`${source}: has no tensor '${name}'`);
        if (!(t.data instanceof Float32Array) || t.shape.join() !== shape.join())
          throw new BadInputError(
            `${source}: tensor '${name}' is ${t.dtype} [${t.shape.join(', ')}], expected float32 [${shape.join(', ')}]`,
          );
        let values = t.data;
        if (name.endsWith('attn.qkv.weight') || name.endsWith('attn.qkv.bias')) {
          // fold the attention scale 1/√head_dim into the q columns: one op less per block
          values = values.slice();
          const cols = 3 * cfg.width;
          for (let i = 0; i < values.length; i++)
            if (i % cols < cfg.width) values[i] = (values[i] as number) * qkvScale;
        }
        this.w.set(name, tf.tensor(values, shape));
      }
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  private p(name: string): tf.Tensor {
    return this.w.get(name) as tf.Tensor;
  }

  /** Images per forward call: bounded by the [B, H, T, T] scores and [B·T, mlp] activations. */
  get chunk(): number {
    const t = vitTokens(this.cfg);
    const perImage = 4 * t * (2 * this.cfg.heads * t + 2 * this.cfg.mlp + 8 * this.cfg.width);
    return Math.max(1, Math.min(32, Math.floor(CHUNK_BYTES / perImage)));
  }

  /** Preprocessed pixels [B, S, S, 3] → outputs [B, outDim]. */
  forward(pixels: tf.Tensor4D): tf.Tensor2D {
    const c = this.cfg;
    const batch = pixels.shape[0];
    const t = vitTokens(c);
    const n = batch * t;
    const headDim = c.width / c.heads;
    return tf.tidy(() => {
      // patches: [B, S, S, 3] → [B, g, g, W] → [B, g², W] (row-major patch order, as torch's flatten(2))
      let patches: tf.Tensor = tf.conv2d(
        pixels,
        this.p('patch_embed.weight') as tf.Tensor4D,
        c.patch,
        'valid',
      );
      if (c.patchBias) patches = tf.add(patches, this.p('patch_embed.bias'));
      const cls = tf.broadcastTo(tf.reshape(this.p('cls_token'), [1, 1, c.width]), [batch, 1, c.width]);
      // [B, T, W] → rows [B·T, W]
      let x: tf.Tensor = tf.reshape(
        tf.add(tf.concat([cls, tf.reshape(patches, [batch, t - 1, c.width])], 1), this.p('pos_embed')),
        [n, c.width],
      );
      if (c.lnPre) x = layerNorm(x, this.p('norm_pre.weight'), this.p('norm_pre.bias'), c.eps);
      for (let i = 0; i < c.layers; i++) x = this.block(x, i, batch, t, headDim);
      // class token only: [B, W]
      const pooled = tf.reshape(
        tf.slice(tf.reshape(x, [batch, t, c.width]), [0, 0, 0], [batch, 1, c.width]),
        [batch, c.width],
      );
      const h = layerNorm(pooled, this.p('norm.weight'), this.p('norm.bias'), c.eps);
      const out = this.linear(h, 'head.weight', c.headBias ? 'head.bias' : undefined);
      // F.normalize: x / max(‖x‖, 1e-12)
      return c.l2Normalize
        ? tf.div<tf.Tensor2D>(out, tf.maximum(tf.norm(out, 'euclidean', 1, true), 1e-12))
        : out;
    });
  }

  /** y = x @ W (+ b) as one fused kernel. */
  private linear(x: tf.Tensor, weight: string, bias?: string): tf.Tensor2D {
    const b = this.p(weight) as tf.Tensor2D;
    return tf.fused.matMul(
      bias ? { a: x as tf.Tensor2D, b, bias: this.p(bias) } : { a: x as tf.Tensor2D, b },
    ) as tf.Tensor2D;
  }

  /** One block over rows x [B·T, W]. */
  private block(x: tf.Tensor, i: number, batch: number, t: number, headDim: number): tf.Tensor {
    const { width: w, heads, eps } = this.cfg;
    const b = `blocks.${i}.`;
    // qkv [B·T, 3W] → [B, T, 3, H, hd] → [3, B, H, T, hd] → q (pre-scaled), k, v [B, H, T, hd]
    const h1 = layerNorm(x, this.p(`${b}norm1.weight`), this.p(`${b}norm1.bias`), eps);
    const qkv = tf.reshape(this.linear(h1, `${b}attn.qkv.weight`, `${b}attn.qkv.bias`), [
      batch,
      t,
      3,
      heads,
      headDim,
    ]);
    const [q, k, v] = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4])) as [
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
    ];
    const attn = tf.softmax(tf.matMul(q, k, false, true)); // [B, H, T, T]
    const o = tf.reshape(tf.transpose(tf.matMul(attn, v), [0, 2, 1, 3]), [batch * t, w]); // [B·T, W]
    const x2 = tf.add(x, this.linear(o, `${b}attn.proj.weight`, `${b}attn.proj.bias`));
    // MLP [B·T, W] → [B·T, mlp] → [B·T, W]
    const h2 = layerNorm(x2, this.p(`${b}norm2.weight`), this.p(`${b}norm2.bias`), eps);
    const u = gelu(this.linear(h2, `${b}mlp.fc1.weight`, `${b}mlp.fc1.bias`));
    return tf.add(x2, this.linear(u, `${b}mlp.fc2.weight`, `${b}mlp.fc2.bias`));
  }

  /** uint8 images [count, H, W, 3] of any size → [count, outDim] float32, preprocessed and chunked. */
  async run(images: ImageBatch): Promise<NdArray> {
    const { imageSize: s, outDim } = this.cfg;
    const out = new Float32Array(images.count * outDim);
    for (let start = 0; start < images.count; start += this.chunk) {
      const count = Math.min(this.chunk, images.count - start);
      const pixels = tf.tensor4d(preprocessImages(images, s, this.cfg.mean, this.cfg.std, start, count), [
        count,
        s,
        s,
        3,
      ]);
      const y = this.forward(pixels);
      pixels.dispose();
      out.set(await y.data(), start * outDim);
      y.dispose();
    }
    return ndarray('float32', [images.count, outDim], out);
  }

  dispose(): void {
    tf.dispose([...this.w.values()]);
    this.w.clear();
  }
}
