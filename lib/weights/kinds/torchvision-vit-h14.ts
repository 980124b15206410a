/**
 * torchvision's `vit_h_14` classifier (e.g. ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1, 518 px, 1000 classes; a
 * torch.save of the model's state dict), imported into lib/models/vit.ts's names and layouts.
 */
import { convFromTorch, linearFromTorch, reshape } from '../layout.js';
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

/** vit_h_14: hidden 1280 in 16 heads. */
const HEAD_WIDTH = 80;
/** ImageClassification's defaults: the ImageNet mean/std. */
const MEAN: [number, number, number] = [0.485, 0.456, 0.406];
const STD: [number, number, number] = [0.229, 0.224, 0.225];

/** The mapping and architecture the file's shapes imply (nothing read yet). */
export function planTorchvision(src: CheckpointSource, opts: ImportOptions): VitPlan {
  // sizes from the shapes: conv_proj [W, 3, p, p], pos_embedding [1, g² + 1, W], mlp.0 [mlp, W], head [C, W]
  const conv = need(src, 'conv_proj.weight', 'not a torchvision VisionTransformer with a patch conv');
  const [width, inCh, patch, patchW] = conv.shape as [number, number, number, number];
  if (conv.shape.length !== 4 || inCh !== 3 || patch !== patchW)
    throw badShape(src, conv, '[width, 3, patch, patch]');
  const pos = need(src, 'encoder.pos_embedding');
  const grid = Math.round(Math.sqrt((pos.shape[1] ?? 0) - 1));
  if (pos.shape.length !== 3 || grid * grid + 1 !== pos.shape[1])
    throw badShape(src, pos, '[1, grid² + 1, width]');
  const prefix = 'encoder.layers.encoder_layer_';
  const layers = countLayers(src, prefix);
  const mlp = need(src, `${prefix}0.mlp.0.weight`).shape[0] as number;
  const classes = need(src, 'heads.head.weight', 'heads other than a single Linear are not supported')
    .shape[0] as number;
  const heads = headCount(src, width, HEAD_WIDTH, opts);
  const w = width;
  const tokens = grid * grid + 1;

  const plan: Mapped[] = [
    {
      from: 'conv_proj.weight',
      to: 'patch_embed.weight',
      shape: [w, 3, patch, patch],
      convert: convFromTorch,
    },
    { from: 'conv_proj.bias', to: 'patch_embed.bias', shape: [w] },
    { from: 'class_token', to: 'cls_token', shape: [1, 1, w], convert: (a, what) => reshape(a, [w], what) },
    {
      from: 'encoder.pos_embedding',
      to: 'pos_embed',
      shape: [1, tokens, w],
      convert: (a, what) => reshape(a, [tokens, w], what),
    },
  ];
  for (let i = 0; i < layers; i++) {
    plan.push(
      ...blockPlan(
        `${prefix}${i}.`,
        `blocks.${i}.`,
        { attn: 'self_attention', fc1: 'mlp.0', fc2: 'mlp.3' },
        w,
        mlp,
      ),
    );
  }
  plan.push(
    { from: 'encoder.ln.weight', to: 'norm.weight', shape: [w] },
    { from: 'encoder.ln.bias', to: 'norm.bias', shape: [w] },
    { from: 'heads.head.weight', to: 'head.weight', shape: [classes, w], convert: linearFromTorch },
    { from: 'heads.head.bias', to: 'head.bias', shape: [classes] },
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
      outDim: classes,
      eps: 1e-6,
      lnPre: false,
      patchBias: true,
      headBias: true,
      l2Normalize: false,
      mean: MEAN,
      std: STD,
    },
    notes: {
      eps: 'LayerNorm eps 1e-6 (torchvision VisionTransformer)',
      heads: opts.heads !== undefined ? 'given by the caller' : `width / ${HEAD_WIDTH} (vit_h_14: 16 heads)`,
      preprocessing:
        'torchvision ImageClassification: resize shorter side to image size (PIL bicubic), centre crop, /255, ImageNet mean/std',
      output: 'class token after encoder.ln, heads.head logits',
    },
  };
}

async function importTorchvision(src: CheckpointSource, opts: ImportOptions): Promise<ImportedNetwork> {
  const { plan, config, notes } = planTorchvision(src, opts);
  // every tensor is the classifier's: anything unplanned (e.g. heads.pre_logits) is a variant we do not run
  const { tensors, unused } = await readMapped(src, plan, () => true);
  return { tensors, config, unused, notes };
}

export const torchvisionVitH14Kind: WeightKind = {
  name: 'torchvision-vit-h14',
  description: 'torchvision vit_h_14 ImageNet classifier (e.g. IMAGENET1K_SWAG_E2E_V1, 518 px)',
  formats: ['torch-zip', 'safetensors'],
  options: ['heads'],
  mappingVersion: 1,
  importFrom: importTorchvision,
  fullSize: { imageSize: 518, patch: 14, width: 1280, layers: 32, heads: 16, mlp: 5120, outDim: 1000 },
  build: (tensors, config) => buildVit(tensors, config, 'torchvision-vit-h14', 'logits'),
};
