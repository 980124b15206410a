/**
 * open_clip's `xlm-roberta-large-ViT-H-14` / `ViT-H-14` checkpoint (open_clip_pytorch_model.bin, a torch.save
 * of the whole CLIP state dict; spec §2.3): only the image tower `visual.*` is imported, into
 * lib/models/vit.ts's names and layouts; the text tower and logit_scale are reported unused, never read.
 */
import { convFromTorch } from '../layout.js';
import type { ImportOptions, ImportedNetwork, WeightKind } from '../kind.js';
import type { CheckpointSource } from '../source.js';
import {
  badShape,
  buildVit,
  countLayers,
  headCount,
  need,
  readMapped,
  type Mapped,
  type VitPlan,
  blockPlan,
} from './vit-common.js';

const V = 'visual.';
/** open_clip's ViT-H-14 config: head_width 80. */
const HEAD_WIDTH = 80;
/** open_clip's OPENAI_DATASET_MEAN / _STD (its default preprocessing for these weights). */
const MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** The mapping and architecture the file's shapes imply (nothing read yet). */
export function planOpenClip(src: CheckpointSource, opts: ImportOptions): VitPlan {
  // sizes from the shapes: conv1 [W, 3, p, p], positional_embedding [g² + 1, W], c_fc [mlp, W], proj [W, out]
  const conv = need(src, `${V}conv1.weight`, 'not an open_clip ViT image tower');
  const [width, inCh, patch, patchW] = conv.shape as [number, number, number, number];
  if (conv.shape.length !== 4 || inCh !== 3 || patch !== patchW)
    throw badShape(src, conv, '[width, 3, patch, patch]');
  const pos = need(src, `${V}positional_embedding`);
  const grid = Math.round(Math.sqrt((pos.shape[0] ?? 0) - 1));
  if (pos.shape.length !== 2 || grid * grid + 1 !== pos.shape[0])
    throw badShape(src, pos, '[grid² + 1, width]');
  const layers = countLayers(src, `${V}transformer.resblocks.`);
  const mlp = need(src, `${V}transformer.resblocks.0.mlp.c_fc.weight`).shape[0] as number;
  const proj = need(src, `${V}proj`);
  const outDim = proj.shape[1] as number;
  const heads = headCount(src, width, HEAD_WIDTH, opts);
  const w = width;

  const plan: Mapped[] = [
    {
      from: `${V}conv1.weight`,
      to: 'patch_embed.weight',
      shape: [w, 3, patch, patch],
      convert: convFromTorch,
    },
    { from: `${V}class_embedding`, to: 'cls_token', shape: [w] },
    { from: `${V}positional_embedding`, to: 'pos_embed', shape: [grid * grid + 1, w] },
    { from: `${V}ln_pre.weight`, to: 'norm_pre.weight', shape: [w] },
    { from: `${V}ln_pre.bias`, to: 'norm_pre.bias', shape: [w] },
  ];
  for (let i = 0; i < layers; i++) {
    plan.push(
      ...blockPlan(
        `${V}transformer.resblocks.${i}.`,
        `blocks.${i}.`,
        { attn: 'attn', fc1: 'mlp.c_fc', fc2: 'mlp.c_proj' },
        w,
        mlp,
      ),
    );
  }
  plan.push(
    { from: `${V}ln_post.weight`, to: 'norm.weight', shape: [w] },
    { from: `${V}ln_post.bias`, to: 'norm.bias', shape: [w] },
    // proj is a bare Parameter used as `pooled @ proj`: already [in, out]
    { from: `${V}proj`, to: 'head.weight', shape: [w, outDim] },
  );
  return {
    plan,
    config: {
      imageSize: grid * patch,
      patch,
      width,
      layers,
      heads,
      mlp,
      outDim,
      eps: 1e-5,
      lnPre: true,
      patchBias: false,
      headBias: false,
      l2Normalize: true,
      mean: MEAN,
      std: STD,
    },
    notes: {
      eps: 'LayerNorm eps 1e-5 (open_clip default)',
      heads:
        opts.heads !== undefined ? 'given by the caller' : `width / ${HEAD_WIDTH} (open_clip head_width)`,
      gelu: 'exact (erf) GELU: open_clip ViT-H-14 does not use QuickGELU',
      preprocessing:
        'open_clip eval: resize shorter side to image size (PIL bicubic), centre crop, /255, OPENAI mean/std',
      output: 'class token after ln_post, @ proj, L2-normalised (encode_image(normalize=True))',
    },
  };
}

async function importOpenClip(src: CheckpointSource, opts: ImportOptions): Promise<ImportedNetwork> {
  const { plan, config, notes } = planOpenClip(src, opts);
  const { tensors, unused } = await readMapped(src, plan, (n) => n.startsWith(V));
  return { tensors, config, unused, notes };
}

export const openclipVitH14Kind: WeightKind = {
  name: 'openclip-vit-h14',
  description:
    "open_clip ViT-H/14 CLIP (e.g. xlm-roberta-large-ViT-H-14 'frozen_laion5b_s13b_b90k'): image tower",
  formats: ['torch-zip', 'safetensors'],
  options: ['heads'],
  mappingVersion: 1,
  importFrom: importOpenClip,
  fullSize: { imageSize: 224, patch: 14, width: 1280, layers: 32, heads: 16, mlp: 5120, outDim: 1024 },
  build: (tensors, config) => buildVit(tensors, config, 'openclip-vit-h14', 'features'),
};
