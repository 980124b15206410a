/**
 * `npm run bench -- --only kernel-counts` (or `node --import tsx bench/kernel-counts.ts`): backend kernel calls
 * of one training step (lib/train/loop.ts trainingStep: forward, backward, clipping, AdamW) of the fMRI autoencoder
 * and of MaskGIT with the paper's structure (depth, heads, ROIs, batch 8), split forward / backward / update,
 * with the most called kernels. Prints them and writes JSON to bench/results/.
 *
 * Identity calls are tfjs keeping the tensors a backward reads (one per tensor saved); tfjs-node serves them with
 * a reference count, no native work, so the line gives the total without them as well.
 *
 * Counted at reduced sizes (about 3 GB at the peak, against 10-12 GB at the paper's): a count follows the
 * structure, not the sizes, except where lib/models/fused/pieces.ts's backward pieces pick kernels by size (an explicit
 * transpose in the backward from 2^18 weights, column sums as an einsum from 2^16 entries), so widths stay at 512,
 * the smallest at which every such choice comes out as at the paper's size. The batch is the paper's, though the
 * count no longer depends on it.
 * test/kernel-count.test.ts checks all three.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { initCompute } from '../lib/compute/backend.js';
import { countParams } from '../lib/models/layers.js';
import { paperAeConfig, paperMaskGitConfig } from '../test/helpers/paper.js';
import { countStep, topKernels } from './count-kernels.js';
import { aeStep, maskGitStep, type ModelStep } from './model-steps.js';

const BATCH = 8;
const paperAe = paperAeConfig();
const paperMaskGit = paperMaskGitConfig();
const models: { model: string; reduced: string; build: () => ModelStep }[] = [
  {
    model: 'fMRI autoencoder, GOD sbj_1',
    reduced: 'widths 1024 and 512 -> 512, latent 1024 -> 64, 32 -> 4 tokens per ROI, voxels / 8',
    build: () =>
      aeStep(
        {
          ...paperAe,
          roiSizes: paperAe.roiSizes.map((n) => Math.ceil(n / 8)),
          tokensPerRoi: 4,
          width: 512,
          latent: 64,
          decoderWidth: 512,
        },
        BATCH,
      ),
  },
  {
    model: 'MaskGIT transformer',
    reduced: 'width 768 -> 512, MLP 3072 -> 512, 256 -> 32 tokens',
    build: () => maskGitStep({ ...paperMaskGit, width: 512, mlpHidden: 512, length: 32 }, BATCH),
  },
];

const provenance = await initCompute();
const rows = [];
for (const { model, reduced, build } of models) {
  const s = build();
  try {
    const k = await countStep(s.params, s.opt, s.loss);
    rows.push({ model, reduced, parameters: countParams(s.params), batch: BATCH, ...k });
    console.log(
      `${model}: ${k.step.total} kernel calls per training step, ${k.step.total - (k.step.byName.Identity ?? 0)} ` +
        `without Identity (forward ${k.forward}, backward ${k.backward}, ` +
        `clip and AdamW ${k.update}); most called: ${topKernels(k.step, 10)}\n` +
        `  counted at ${reduced} (paper depth, heads and batch ${BATCH}; the same count as at the paper's size)`,
    );
  } finally {
    s.dispose();
  }
}
const dir = fileURLToPath(new URL('results', import.meta.url));
mkdirSync(dir, { recursive: true });
const file = `${dir}/kernel-counts-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify({ provenance, rows }, null, 2));
console.log(`wrote ${file}`);
