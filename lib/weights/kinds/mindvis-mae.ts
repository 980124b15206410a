/**
 * MinD-Vis's fMRI MAE (SC-MBM, `fmri_encoder.pth`): torch.save of {'model': state_dict, 'optimizer', 'epoch',
 * 'scaler', 'config'}. Only 'model' is imported; 'config' (a pickled Config_MBM_fMRI) is never constructed, its
 * plain fields are read as data where they can be (num_heads, decoder_num_heads, mask_ratio).
 *
 * MinD-Vis names are the project's FmriMae names (lib/models/mae.ts); Linear weights are transposed and the
 * Conv1d patch embedding [D, 1, p] becomes [p, 1, D]. pos_embed / decoder_pos_embed are fixed sin-cos tables
 * (requires_grad=False) that FmriMae recomputes for any voxel count, so they are not imported; their length
 * (the pre-training patch count) is recorded for the position adaptation a later stage may need.
 */
import { BadInputError } from '../../errors.js';
import type { MaeConfig } from '../../models/mae.js';
import { sincosPositions } from '../../models/layers.js';
import type { NdArray } from '../../tensors/ndarray.js';
import type { ImportedNetwork, ImportOptions, WeightKind } from '../kind.js';
import type { CheckpointSource } from '../source.js';
import { convFromTorch, linearFromTorch } from '../layout.js';
import { TensorTaker, dim } from '../take.js';

/** timm Block tensors in PyTorch's layout for width w and MLP hidden f, and whether each is a Linear weight. */
const BLOCK_TENSORS: [string, (w: number, f: number) => number[], boolean][] = [
  ['norm1.weight', (w) => [w], false],
  ['norm1.bias', (w) => [w], false],
  ['attn.qkv.weight', (w) => [3 * w, w], true],
  ['attn.qkv.bias', (w) => [3 * w], false],
  ['attn.proj.weight', (w) => [w, w], true],
  ['attn.proj.bias', (w) => [w], false],
  ['norm2.weight', (w) => [w], false],
  ['norm2.bias', (w) => [w], false],
  ['mlp.fc1.weight', (w, f) => [f, w], true],
  ['mlp.fc1.bias', (_w, f) => [f], false],
  ['mlp.fc2.weight', (w, f) => [w, f], true],
  ['mlp.fc2.bias', (w) => [w], false],
];

const HEADS_DEFAULT = 16;

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

/** Largest |pos_embed − sin-cos table| over the stored table (CLS row included), for the record. */
function sincosDeviation(pos: NdArray, width: number, rows: number): number {
  const expected = sincosPositions(width, rows - 1); // [rows, width], CLS row first
  const got = pos.data as Float32Array;
  let worst = 0;
  for (let i = 0; i < expected.length; i++)
    worst = Math.max(worst, Math.abs((got[i] as number) - (expected[i] as number)));
  return worst;
}

async function importMindVis(src: CheckpointSource, opts: ImportOptions): Promise<ImportedNetwork> {
  const t = new TensorTaker(src);
  const patch = dim(t, 'patch_embed.proj.weight', 2, 3);
  const width = dim(t, 'patch_embed.proj.weight', 0, 3);
  const depth = t.count('blocks.', '.norm1.weight');
  const decoderDepth = t.count('decoder_blocks.', '.norm1.weight');
  if (depth === 0 || decoderDepth === 0) {
    throw new BadInputError(
      `${src.path}: no 'blocks.0.*' or 'decoder_blocks.0.*' tensors: not a MinD-Vis MAE state dict`,
    );
  }
  const decoderWidth = dim(t, 'decoder_embed.weight', 0, 2);
  const mlp = dim(t, 'blocks.0.mlp.fc1.weight', 0, 2);
  const cfgEntry = (src.extras.config ?? {}) as Record<string, unknown>;
  const heads = opts.heads ?? positiveInt(cfgEntry.num_heads) ?? HEADS_DEFAULT;
  const decoderHeads = opts.heads ?? positiveInt(cfgEntry.decoder_num_heads) ?? HEADS_DEFAULT;
  const maskRatio = typeof cfgEntry.mask_ratio === 'number' ? cfgEntry.mask_ratio : 0.75;
  for (const [w, h] of [
    [width, heads],
    [decoderWidth, decoderHeads],
  ] as const) {
    if (w % h !== 0)
      throw new BadInputError(`${src.path}: width ${w} does not divide into ${h} heads (use --heads)`);
  }
  const config: MaeConfig = {
    patchSize: patch,
    width,
    depth,
    heads,
    mlpRatio: mlp / width,
    decoderWidth,
    decoderDepth,
    decoderHeads,
    maskRatio,
    eps: 1e-5, // MinD-Vis passes nn.LayerNorm (eps 1e-5) to timm's Block
  };

  // every tensor's PyTorch shape at the inferred size, checked before it is converted
  const tensors = new Map<string, NdArray>();
  const put = async (name: string, shape: number[], convert?: (a: NdArray, what: string) => NdArray) => {
    const raw = await t.take(name, shape);
    tensors.set(name, convert ? convert(raw, `${src.path}: ${name}`) : raw);
  };
  await put('patch_embed.proj.weight', [width, 1, patch], convFromTorch);
  await put('patch_embed.proj.bias', [width]);
  await put('cls_token', [1, 1, width]);
  for (const [prefix, n, w] of [
    ['blocks.', depth, width],
    ['decoder_blocks.', decoderDepth, decoderWidth],
  ] as const) {
    for (let i = 0; i < n; i++) {
      for (const [suffix, shape, isLinear] of BLOCK_TENSORS)
        await put(
          `${prefix}${i}.${suffix}`,
          shape(w, Math.round(w * config.mlpRatio)),
          isLinear ? linearFromTorch : undefined,
        );
    }
  }
  await put('norm.weight', [width]);
  await put('norm.bias', [width]);
  await put('decoder_embed.weight', [decoderWidth, width], linearFromTorch);
  await put('decoder_embed.bias', [decoderWidth]);
  await put('mask_token', [1, 1, decoderWidth]);
  await put('decoder_norm.weight', [decoderWidth]);
  await put('decoder_norm.bias', [decoderWidth]);
  await put('decoder_pred.weight', [patch, decoderWidth], linearFromTorch);
  await put('decoder_pred.bias', [patch]);

  const notes: ImportedNetwork['notes'] = {
    heads: opts.heads
      ? '--heads'
      : positiveInt(cfgEntry.num_heads)
        ? 'config entry'
        : `default ${HEADS_DEFAULT}`,
    layerNormEps: 1e-5,
  };
  if (t.has('pos_embed')) {
    const pos = await t.take('pos_embed', [1, -1, width]);
    const rows = pos.shape[1] as number;
    notes.pretrainPatches = rows - 1;
    notes.posEmbedMaxDeviationFromSinCos = sincosDeviation(pos, width, rows);
  }
  t.skip('decoder_pos_embed');
  const unused = t.unused();
  return { tensors, config: { ...config }, unused, notes };
}

export const mindvisMaeKind: WeightKind = {
  name: 'mindvis-mae',
  description:
    "MinD-Vis's SC-MBM fMRI MAE (fmri_encoder.pth; torch.save with 'model', 'optimizer', 'config')",
  formats: ['torch-zip', 'safetensors'],
  entry: 'model',
  options: ['heads'],
  mappingVersion: 1,
  importFrom: importMindVis,
  fullSize: {
    patchSize: 16,
    width: 1024,
    depth: 24,
    heads: 16,
    mlpRatio: 1,
    decoderWidth: 512,
    decoderDepth: 8,
    decoderHeads: 16,
  },
};
